using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Read.Domain.Persistence.Migrations.Sqlite
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
                type: "TEXT",
                maxLength: 64,
                nullable: true);

            migrationBuilder.AddColumn<double>(
                name: "BestMetricValue",
                table: "fine_tuning_sweeps",
                type: "REAL",
                nullable: true);

            migrationBuilder.AddColumn<DateTime>(
                name: "CancelRequestedAt",
                table: "fine_tuning_sweeps",
                type: "TEXT",
                nullable: true);

            migrationBuilder.AddColumn<DateTime>(
                name: "FinishedAt",
                table: "fine_tuning_sweeps",
                type: "TEXT",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "PromotedAdapterId",
                table: "fine_tuning_sweeps",
                type: "TEXT",
                maxLength: 64,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "Status",
                table: "fine_tuning_sweeps",
                type: "TEXT",
                maxLength: 16,
                nullable: false,
                defaultValue: "running");

            migrationBuilder.AddColumn<DateTime>(
                name: "CreatedAt",
                table: "file_chunks",
                type: "TEXT",
                nullable: false,
                defaultValue: new DateTime(1, 1, 1, 0, 0, 0, 0, DateTimeKind.Unspecified));
            // Chunks already stored count as written now: an upload in flight during the upgrade is not taken for dead.
            // (SQLite refuses a non-constant default on ADD COLUMN, hence the update; EF's text format for DateTime.)
            migrationBuilder.Sql("UPDATE file_chunks SET CreatedAt = strftime('%Y-%m-%d %H:%M:%f', 'now');");

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
