using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Read.Domain.Persistence.Migrations.Postgres
{
    /// <inheritdoc />
    public partial class ReceiptsAcrossAttempts : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<int>(
                name: "Attempts",
                table: "job_measurements",
                type: "integer",
                nullable: true);

            migrationBuilder.AddColumn<long>(
                name: "BackboneTokens",
                table: "job_measurements",
                type: "bigint",
                nullable: true);

            migrationBuilder.AddColumn<double>(
                name: "EvaluateSeconds",
                table: "job_measurements",
                type: "double precision",
                nullable: true);

            migrationBuilder.AddColumn<double>(
                name: "PrecomputeSeconds",
                table: "job_measurements",
                type: "double precision",
                nullable: true);

            migrationBuilder.AddColumn<double>(
                name: "TrainSeconds",
                table: "job_measurements",
                type: "double precision",
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "Attempts",
                table: "job_measurements");

            migrationBuilder.DropColumn(
                name: "BackboneTokens",
                table: "job_measurements");

            migrationBuilder.DropColumn(
                name: "EvaluateSeconds",
                table: "job_measurements");

            migrationBuilder.DropColumn(
                name: "PrecomputeSeconds",
                table: "job_measurements");

            migrationBuilder.DropColumn(
                name: "TrainSeconds",
                table: "job_measurements");
        }
    }
}
