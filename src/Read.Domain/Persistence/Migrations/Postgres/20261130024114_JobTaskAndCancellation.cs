using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Read.Domain.Persistence.Migrations.Postgres
{
    /// <inheritdoc />
    public partial class JobTaskAndCancellation : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<DateTime>(
                name: "CancelRequestedAt",
                table: "fine_tuning_jobs",
                type: "timestamp with time zone",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "Task",
                table: "fine_tuning_jobs",
                type: "character varying(16)",
                maxLength: 16,
                nullable: false,
                defaultValue: "classification");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "CancelRequestedAt",
                table: "fine_tuning_jobs");

            migrationBuilder.DropColumn(
                name: "Task",
                table: "fine_tuning_jobs");
        }
    }
}
