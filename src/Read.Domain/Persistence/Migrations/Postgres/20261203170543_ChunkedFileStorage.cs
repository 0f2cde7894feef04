using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Read.Domain.Persistence.Migrations.Postgres
{
    /// <inheritdoc />
    public partial class ChunkedFileStorage : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            // The request as sent when it had "auto" values; hyperparameters then holds the resolved ones.
            migrationBuilder.AddColumn<string>(
                name: "RequestedHyperparametersJson",
                table: "fine_tuning_jobs",
                type: "text",
                nullable: true);

            migrationBuilder.CreateTable(
                name: "file_chunks",
                columns: table => new
                {
                    FileId = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    Index = table.Column<int>(type: "integer", nullable: false),
                    Content = table.Column<byte[]>(type: "bytea", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_file_chunks", x => new { x.FileId, x.Index });
                });
            // Existing files become 1 MiB chunks (FileContentStore.ChunkBytes), in order, before the column goes.
            migrationBuilder.Sql("""
                INSERT INTO file_chunks ("FileId", "Index", "Content")
                SELECT f."Id", g.i, substring(f."Content" FROM g.i * 1048576 + 1 FOR 1048576)
                FROM files f, generate_series(0, GREATEST(length(f."Content") - 1, 0) / 1048576) AS g(i);
                """);

            migrationBuilder.DropColumn(
                name: "Content",
                table: "files");

        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "RequestedHyperparametersJson",
                table: "fine_tuning_jobs");

            migrationBuilder.AddColumn<byte[]>(
                name: "Content",
                table: "files",
                type: "bytea",
                nullable: false,
                defaultValue: new byte[0]);
            migrationBuilder.Sql("""
                UPDATE files f SET "Content" = (SELECT string_agg(c."Content", ''::bytea ORDER BY c."Index") FROM file_chunks c WHERE c."FileId" = f."Id")
                WHERE EXISTS (SELECT 1 FROM file_chunks c WHERE c."FileId" = f."Id");
                """);

            migrationBuilder.DropTable(
                name: "file_chunks");

        }
    }
}
