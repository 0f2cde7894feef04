using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Read.Domain.Persistence.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class WebhooksReceiptsQuotasSweeps : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<int>(
                name: "MaxConcurrentJobs",
                table: "tenants",
                type: "INTEGER",
                nullable: true);

            migrationBuilder.AddColumn<long>(
                name: "MaxStorageBytes",
                table: "tenants",
                type: "INTEGER",
                nullable: true);

            migrationBuilder.CreateTable(
                name: "fine_tuning_sweeps",
                columns: table => new
                {
                    Id = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    TenantId = table.Column<Guid>(type: "TEXT", nullable: false),
                    BackboneId = table.Column<string>(type: "TEXT", maxLength: 128, nullable: false),
                    TrainingFileId = table.Column<string>(type: "TEXT", nullable: false),
                    ValidationFileId = table.Column<string>(type: "TEXT", nullable: true),
                    Metric = table.Column<string>(type: "TEXT", maxLength: 32, nullable: false),
                    MaxParallel = table.Column<int>(type: "INTEGER", nullable: false),
                    TrialJobIds = table.Column<string>(type: "TEXT", nullable: false),
                    CreatedAt = table.Column<DateTime>(type: "TEXT", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_fine_tuning_sweeps", x => x.Id);
                    table.ForeignKey(
                        name: "FK_fine_tuning_sweeps_tenants_TenantId",
                        column: x => x.TenantId,
                        principalTable: "tenants",
                        principalColumn: "Id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateTable(
                name: "job_measurements",
                columns: table => new
                {
                    JobId = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    TenantId = table.Column<Guid>(type: "TEXT", nullable: false),
                    CpuSeconds = table.Column<double>(type: "REAL", nullable: false),
                    PeakRssBytes = table.Column<long>(type: "INTEGER", nullable: false),
                    DatasetTokens = table.Column<long>(type: "INTEGER", nullable: false),
                    ConcurrentJobs = table.Column<int>(type: "INTEGER", nullable: false),
                    Worker = table.Column<string>(type: "TEXT", maxLength: 256, nullable: false),
                    MeasuredAt = table.Column<DateTime>(type: "TEXT", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_job_measurements", x => x.JobId);
                    table.ForeignKey(
                        name: "FK_job_measurements_fine_tuning_jobs_JobId",
                        column: x => x.JobId,
                        principalTable: "fine_tuning_jobs",
                        principalColumn: "Id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateTable(
                name: "job_state_changes",
                columns: table => new
                {
                    Id = table.Column<long>(type: "INTEGER", nullable: false)
                        .Annotation("Sqlite:Autoincrement", true),
                    JobId = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    TenantId = table.Column<Guid>(type: "TEXT", nullable: false),
                    Status = table.Column<string>(type: "TEXT", maxLength: 16, nullable: false),
                    OccurredAt = table.Column<DateTime>(type: "TEXT", nullable: false),
                    FannedOutAt = table.Column<DateTime>(type: "TEXT", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_job_state_changes", x => x.Id);
                });

            migrationBuilder.CreateTable(
                name: "webhook_endpoints",
                columns: table => new
                {
                    Id = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    TenantId = table.Column<Guid>(type: "TEXT", nullable: false),
                    Url = table.Column<string>(type: "TEXT", maxLength: 2048, nullable: false),
                    Events = table.Column<string>(type: "TEXT", nullable: false),
                    Secret = table.Column<string>(type: "TEXT", maxLength: 128, nullable: false),
                    CreatedAt = table.Column<DateTime>(type: "TEXT", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_webhook_endpoints", x => x.Id);
                    table.ForeignKey(
                        name: "FK_webhook_endpoints_tenants_TenantId",
                        column: x => x.TenantId,
                        principalTable: "tenants",
                        principalColumn: "Id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateTable(
                name: "webhook_deliveries",
                columns: table => new
                {
                    Id = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    EndpointId = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    TenantId = table.Column<Guid>(type: "TEXT", nullable: false),
                    ChangeId = table.Column<long>(type: "INTEGER", nullable: false),
                    EventType = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    Payload = table.Column<string>(type: "TEXT", nullable: false),
                    Status = table.Column<string>(type: "TEXT", maxLength: 16, nullable: false),
                    Attempts = table.Column<int>(type: "INTEGER", nullable: false),
                    NextAttemptAt = table.Column<DateTime>(type: "TEXT", nullable: false),
                    LastStatusCode = table.Column<int>(type: "INTEGER", nullable: true),
                    LastError = table.Column<string>(type: "TEXT", nullable: true),
                    CreatedAt = table.Column<DateTime>(type: "TEXT", nullable: false),
                    DeliveredAt = table.Column<DateTime>(type: "TEXT", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_webhook_deliveries", x => x.Id);
                    table.ForeignKey(
                        name: "FK_webhook_deliveries_webhook_endpoints_EndpointId",
                        column: x => x.EndpointId,
                        principalTable: "webhook_endpoints",
                        principalColumn: "Id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateTable(
                name: "webhook_delivery_attempts",
                columns: table => new
                {
                    Id = table.Column<long>(type: "INTEGER", nullable: false)
                        .Annotation("Sqlite:Autoincrement", true),
                    DeliveryId = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    Number = table.Column<int>(type: "INTEGER", nullable: false),
                    StartedAt = table.Column<DateTime>(type: "TEXT", nullable: false),
                    DurationMs = table.Column<double>(type: "REAL", nullable: false),
                    StatusCode = table.Column<int>(type: "INTEGER", nullable: true),
                    Error = table.Column<string>(type: "TEXT", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_webhook_delivery_attempts", x => x.Id);
                    table.ForeignKey(
                        name: "FK_webhook_delivery_attempts_webhook_deliveries_DeliveryId",
                        column: x => x.DeliveryId,
                        principalTable: "webhook_deliveries",
                        principalColumn: "Id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateIndex(
                name: "IX_fine_tuning_sweeps_TenantId_CreatedAt",
                table: "fine_tuning_sweeps",
                columns: new[] { "TenantId", "CreatedAt" });

            migrationBuilder.CreateIndex(
                name: "IX_job_state_changes_FannedOutAt",
                table: "job_state_changes",
                column: "FannedOutAt");

            migrationBuilder.CreateIndex(
                name: "IX_webhook_deliveries_EndpointId_ChangeId",
                table: "webhook_deliveries",
                columns: new[] { "EndpointId", "ChangeId" },
                unique: true);

            migrationBuilder.CreateIndex(
                name: "IX_webhook_deliveries_EndpointId_CreatedAt",
                table: "webhook_deliveries",
                columns: new[] { "EndpointId", "CreatedAt" });

            migrationBuilder.CreateIndex(
                name: "IX_webhook_deliveries_Status_NextAttemptAt",
                table: "webhook_deliveries",
                columns: new[] { "Status", "NextAttemptAt" });

            migrationBuilder.CreateIndex(
                name: "IX_webhook_delivery_attempts_DeliveryId_Number",
                table: "webhook_delivery_attempts",
                columns: new[] { "DeliveryId", "Number" });

            migrationBuilder.CreateIndex(
                name: "IX_webhook_endpoints_TenantId_CreatedAt",
                table: "webhook_endpoints",
                columns: new[] { "TenantId", "CreatedAt" });

            // The webhook outbox is filled by the database itself, in the statement that changes a job's status: every
            // writer (API, worker, ExecuteUpdate or SaveChanges) is covered and the change and its event commit together.
            migrationBuilder.Sql("""
                CREATE TRIGGER job_state_change_insert AFTER INSERT ON fine_tuning_jobs
                BEGIN
                    INSERT INTO job_state_changes (JobId, TenantId, Status, OccurredAt)
                    VALUES (NEW.Id, NEW.TenantId, NEW.Status, strftime('%Y-%m-%d %H:%M:%f', 'now'));
                END;
                """);
            migrationBuilder.Sql("""
                CREATE TRIGGER job_state_change_update AFTER UPDATE OF Status ON fine_tuning_jobs
                WHEN NEW.Status IS NOT OLD.Status
                BEGIN
                    INSERT INTO job_state_changes (JobId, TenantId, Status, OccurredAt)
                    VALUES (NEW.Id, NEW.TenantId, NEW.Status, strftime('%Y-%m-%d %H:%M:%f', 'now'));
                END;
                """);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql("DROP TRIGGER IF EXISTS job_state_change_insert;");
            migrationBuilder.Sql("DROP TRIGGER IF EXISTS job_state_change_update;");

            migrationBuilder.DropTable(
                name: "fine_tuning_sweeps");

            migrationBuilder.DropTable(
                name: "job_measurements");

            migrationBuilder.DropTable(
                name: "job_state_changes");

            migrationBuilder.DropTable(
                name: "webhook_delivery_attempts");

            migrationBuilder.DropTable(
                name: "webhook_deliveries");

            migrationBuilder.DropTable(
                name: "webhook_endpoints");

            migrationBuilder.DropColumn(
                name: "MaxConcurrentJobs",
                table: "tenants");

            migrationBuilder.DropColumn(
                name: "MaxStorageBytes",
                table: "tenants");
        }
    }
}
