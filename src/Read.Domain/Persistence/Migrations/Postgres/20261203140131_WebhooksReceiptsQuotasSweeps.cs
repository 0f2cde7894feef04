using System;
using System.Collections.Generic;
using Microsoft.EntityFrameworkCore.Migrations;
using Npgsql.EntityFrameworkCore.PostgreSQL.Metadata;

#nullable disable

namespace Read.Domain.Persistence.Migrations.Postgres
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
                type: "integer",
                nullable: true);

            migrationBuilder.AddColumn<long>(
                name: "MaxStorageBytes",
                table: "tenants",
                type: "bigint",
                nullable: true);

            migrationBuilder.CreateTable(
                name: "fine_tuning_sweeps",
                columns: table => new
                {
                    Id = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    TenantId = table.Column<Guid>(type: "uuid", nullable: false),
                    BackboneId = table.Column<string>(type: "character varying(128)", maxLength: 128, nullable: false),
                    TrainingFileId = table.Column<string>(type: "text", nullable: false),
                    ValidationFileId = table.Column<string>(type: "text", nullable: true),
                    Metric = table.Column<string>(type: "character varying(32)", maxLength: 32, nullable: false),
                    MaxParallel = table.Column<int>(type: "integer", nullable: false),
                    TrialJobIds = table.Column<List<string>>(type: "text[]", nullable: false),
                    CreatedAt = table.Column<DateTime>(type: "timestamp with time zone", nullable: false)
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
                    JobId = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    TenantId = table.Column<Guid>(type: "uuid", nullable: false),
                    CpuSeconds = table.Column<double>(type: "double precision", nullable: false),
                    PeakRssBytes = table.Column<long>(type: "bigint", nullable: false),
                    DatasetTokens = table.Column<long>(type: "bigint", nullable: false),
                    ConcurrentJobs = table.Column<int>(type: "integer", nullable: false),
                    Worker = table.Column<string>(type: "character varying(256)", maxLength: 256, nullable: false),
                    MeasuredAt = table.Column<DateTime>(type: "timestamp with time zone", nullable: false)
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
                    Id = table.Column<long>(type: "bigint", nullable: false)
                        .Annotation("Npgsql:ValueGenerationStrategy", NpgsqlValueGenerationStrategy.IdentityByDefaultColumn),
                    JobId = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    TenantId = table.Column<Guid>(type: "uuid", nullable: false),
                    Status = table.Column<string>(type: "character varying(16)", maxLength: 16, nullable: false),
                    OccurredAt = table.Column<DateTime>(type: "timestamp with time zone", nullable: false),
                    FannedOutAt = table.Column<DateTime>(type: "timestamp with time zone", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_job_state_changes", x => x.Id);
                });

            migrationBuilder.CreateTable(
                name: "webhook_endpoints",
                columns: table => new
                {
                    Id = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    TenantId = table.Column<Guid>(type: "uuid", nullable: false),
                    Url = table.Column<string>(type: "character varying(2048)", maxLength: 2048, nullable: false),
                    Events = table.Column<List<string>>(type: "text[]", nullable: false),
                    Secret = table.Column<string>(type: "character varying(128)", maxLength: 128, nullable: false),
                    CreatedAt = table.Column<DateTime>(type: "timestamp with time zone", nullable: false)
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
                    Id = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    EndpointId = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    TenantId = table.Column<Guid>(type: "uuid", nullable: false),
                    ChangeId = table.Column<long>(type: "bigint", nullable: false),
                    EventType = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    Payload = table.Column<string>(type: "text", nullable: false),
                    Status = table.Column<string>(type: "character varying(16)", maxLength: 16, nullable: false),
                    Attempts = table.Column<int>(type: "integer", nullable: false),
                    NextAttemptAt = table.Column<DateTime>(type: "timestamp with time zone", nullable: false),
                    LastStatusCode = table.Column<int>(type: "integer", nullable: true),
                    LastError = table.Column<string>(type: "text", nullable: true),
                    CreatedAt = table.Column<DateTime>(type: "timestamp with time zone", nullable: false),
                    DeliveredAt = table.Column<DateTime>(type: "timestamp with time zone", nullable: true)
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
                    Id = table.Column<long>(type: "bigint", nullable: false)
                        .Annotation("Npgsql:ValueGenerationStrategy", NpgsqlValueGenerationStrategy.IdentityByDefaultColumn),
                    DeliveryId = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    Number = table.Column<int>(type: "integer", nullable: false),
                    StartedAt = table.Column<DateTime>(type: "timestamp with time zone", nullable: false),
                    DurationMs = table.Column<double>(type: "double precision", nullable: false),
                    StatusCode = table.Column<int>(type: "integer", nullable: true),
                    Error = table.Column<string>(type: "text", nullable: true)
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
                CREATE FUNCTION read_record_job_state_change() RETURNS trigger AS $$
                BEGIN
                    IF TG_OP = 'INSERT' OR NEW."Status" IS DISTINCT FROM OLD."Status" THEN
                        INSERT INTO job_state_changes ("JobId", "TenantId", "Status", "OccurredAt")
                        VALUES (NEW."Id", NEW."TenantId", NEW."Status", now());
                    END IF;
                    RETURN NEW;
                END
                $$ LANGUAGE plpgsql;
                CREATE TRIGGER job_state_change AFTER INSERT OR UPDATE OF "Status" ON fine_tuning_jobs
                    FOR EACH ROW EXECUTE FUNCTION read_record_job_state_change();
                """);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql("""
                DROP TRIGGER IF EXISTS job_state_change ON fine_tuning_jobs;
                DROP FUNCTION IF EXISTS read_record_job_state_change();
                """);

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
