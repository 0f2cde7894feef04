using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Read.Domain.Persistence.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class BatchPredictions : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "batches",
                columns: table => new
                {
                    Id = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    TenantId = table.Column<Guid>(type: "TEXT", nullable: false),
                    Endpoint = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    InputFileId = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    CompletionWindow = table.Column<string>(type: "TEXT", maxLength: 16, nullable: false),
                    Status = table.Column<string>(type: "TEXT", maxLength: 16, nullable: false),
                    OutputFileId = table.Column<string>(type: "TEXT", maxLength: 64, nullable: true),
                    ErrorFileId = table.Column<string>(type: "TEXT", maxLength: 64, nullable: true),
                    CreatedAt = table.Column<DateTime>(type: "TEXT", nullable: false),
                    InProgressAt = table.Column<DateTime>(type: "TEXT", nullable: true),
                    FinalizingAt = table.Column<DateTime>(type: "TEXT", nullable: true),
                    CompletedAt = table.Column<DateTime>(type: "TEXT", nullable: true),
                    FailedAt = table.Column<DateTime>(type: "TEXT", nullable: true),
                    CancellingAt = table.Column<DateTime>(type: "TEXT", nullable: true),
                    CancelledAt = table.Column<DateTime>(type: "TEXT", nullable: true),
                    TotalRequests = table.Column<int>(type: "INTEGER", nullable: false),
                    CompletedRequests = table.Column<int>(type: "INTEGER", nullable: false),
                    FailedRequests = table.Column<int>(type: "INTEGER", nullable: false),
                    ErrorsJson = table.Column<string>(type: "TEXT", nullable: true),
                    MetadataJson = table.Column<string>(type: "TEXT", nullable: true),
                    DefaultTopK = table.Column<int>(type: "INTEGER", nullable: false),
                    MaxTopK = table.Column<int>(type: "INTEGER", nullable: false),
                    RunOwner = table.Column<string>(type: "TEXT", maxLength: 128, nullable: true),
                    HangfireJobId = table.Column<string>(type: "TEXT", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_batches", x => x.Id);
                    table.ForeignKey(
                        name: "FK_batches_tenants_TenantId",
                        column: x => x.TenantId,
                        principalTable: "tenants",
                        principalColumn: "Id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateIndex(
                name: "IX_batches_Status",
                table: "batches",
                column: "Status");

            migrationBuilder.CreateIndex(
                name: "IX_batches_TenantId_CreatedAt",
                table: "batches",
                columns: new[] { "TenantId", "CreatedAt" });
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "batches");
        }
    }
}
