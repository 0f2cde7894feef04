using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Read.Domain.Persistence.Migrations.Sqlite
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
                type: "TEXT",
                nullable: true);

            migrationBuilder.CreateTable(
                name: "file_chunks",
                columns: table => new
                {
                    FileId = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    Index = table.Column<int>(type: "INTEGER", nullable: false),
                    Content = table.Column<byte[]>(type: "BLOB", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_file_chunks", x => new { x.FileId, x.Index });
                });
            // Existing files become 1 MiB chunks (FileContentStore.ChunkBytes), in order, before the column goes.
            migrationBuilder.Sql("""
                WITH RECURSIVE pieces(id, i) AS (
                    SELECT "Id", 0 FROM files
                    UNION ALL
                    SELECT p.id, p.i + 1 FROM pieces p JOIN files f ON f."Id" = p.id WHERE (p.i + 1) * 1048576 < length(f."Content"))
                INSERT INTO file_chunks ("FileId", "Index", "Content")
                SELECT p.id, p.i, coalesce(substr(f."Content", p.i * 1048576 + 1, 1048576), x'') FROM pieces p JOIN files f ON f."Id" = p.id;
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
                type: "BLOB",
                nullable: false,
                defaultValue: new byte[0]);
            // SQLite cannot concatenate blobs in order in one statement: a rollback keeps the rows, not their bytes.
            migrationBuilder.DropTable(
                name: "file_chunks");

        }
    }
}
