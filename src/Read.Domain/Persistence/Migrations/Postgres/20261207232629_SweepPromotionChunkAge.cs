using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Read.Domain.Persistence.Migrations.Postgres
{
    /// <inheritdoc />
    public partial class SweepPromotionChunkAge : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "BestJobId",
                table: "fine_tuning_sweeps",
                type: "character varying(64)",
                maxLength: 64,
                nullable: true);

            migrationBuilder.AddColumn<double>(
                name: "BestMetricValue",
                table: "fine_tuning_sweeps",
                type: "double precision",
                nullable: true);

            migrationBuilder.AddColumn<DateTime>(
                name: "CancelRequestedAt",
                table: "fine_tuning_sweeps",
                type: "timestamp with time zone",
                nullable: true);

            migrationBuilder.AddColumn<DateTime>(
                name: "FinishedAt",
                table: "fine_tuning_sweeps",
                type: "timestamp with time zone",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "PromotedAdapterId",
                table: "fine_tuning_sweeps",
                type: "character varying(64)",
                maxLength: 64,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "Status",
                table: "fine_tuning_sweeps",
                type: "character varying(16)",
                maxLength: 16,
                nullable: false,
                defaultValue: "running");

            migrationBuilder.AddColumn<DateTime>(
                name: "CreatedAt",
                table: "file_chunks",
                type: "timestamp with time zone",
                nullable: false,
                // Chunks already stored count as written now: an upload in flight during the upgrade is not taken for dead.
                // (Evaluated once on ADD COLUMN, so no table rewrite; new rows always carry their own time.)
                defaultValueSql: "CURRENT_TIMESTAMP");

            migrationBuilder.CreateIndex(
                name: "IX_fine_tuning_sweeps_Status",
                table: "fine_tuning_sweeps",
                column: "Status");

            migrationBuilder.CreateIndex(
                name: "IX_file_chunks_FileId_CreatedAt",
                table: "file_chunks",
                columns: new[] { "FileId", "CreatedAt" });
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "IX_fine_tuning_sweeps_Status",
                table: "fine_tuning_sweeps");

            migrationBuilder.DropIndex(
                name: "IX_file_chunks_FileId_CreatedAt",
                table: "file_chunks");

            migrationBuilder.DropColumn(
                name: "BestJobId",
                table: "fine_tuning_sweeps");

            migrationBuilder.DropColumn(
                name: "BestMetricValue",
                table: "fine_tuning_sweeps");

            migrationBuilder.DropColumn(
                name: "CancelRequestedAt",
                table: "fine_tuning_sweeps");

            migrationBuilder.DropColumn(
                name: "FinishedAt",
                table: "fine_tuning_sweeps");

            migrationBuilder.DropColumn(
                name: "PromotedAdapterId",
                table: "fine_tuning_sweeps");

            migrationBuilder.DropColumn(
                name: "Status",
                table: "fine_tuning_sweeps");

            migrationBuilder.DropColumn(
                name: "CreatedAt",
                table: "file_chunks");
        }
    }
}
