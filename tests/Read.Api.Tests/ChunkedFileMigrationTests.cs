using System.Security.Cryptography;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;
using Microsoft.Extensions.DependencyInjection;
using Read.Domain.Files;
using Read.Domain.Persistence;
using Read.Domain.Tenants;

namespace Read.Api.Tests;

/// <summary>The ChunkedFileStorage migration moves each existing files.Content into 1 MiB chunks, byte-exact, on both providers.</summary>
public sealed class ChunkedFileMigrationTests
{
    private const string Before = "BatchPredictions"; // the migration just before ChunkedFileStorage

    [Fact]
    public async Task Postgres_ExistingContent_BecomesChunksThatReadBackByteExact()
    {
        await using var database = await PostgresDatabase.CreateAsync();
        await RunAsync(DatabaseProvider.Postgres, database.ConnectionString);
    }

    [Fact]
    public async Task Sqlite_ExistingContent_BecomesChunksThatReadBackByteExact()
    {
        var path = Path.Combine(Path.GetTempPath(), $"read-migration-{Guid.NewGuid():N}.db");
        try
        {
            await RunAsync(DatabaseProvider.Sqlite, $"Data Source={path};Pooling=False");
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static async Task RunAsync(DatabaseProvider provider, string connectionString)
    {
        await using var services = new Microsoft.Extensions.DependencyInjection.ServiceCollection().AddReadDatabase(provider, connectionString).BuildServiceProvider();
        await using var db = await services.GetRequiredService<IDbContextFactory<ReadDbContext>>().CreateDbContextAsync();
        var migrator = db.GetService<IMigrator>();
        var before = db.Database.GetMigrations().Single(m => m.EndsWith("_" + Before, StringComparison.Ordinal));
        await migrator.MigrateAsync(before);
        var tenant = Guid.NewGuid();
        db.Tenants.Add(new Tenant { Id = tenant, Name = "migration", CreatedAt = DateTime.UtcNow });
        await db.SaveChangesAsync();

        // Sizes at and around the chunk boundary (hand-picked), plus an empty file: chunk counts 1, 1, 2, 3, and at most
        // one for the empty file (an empty chunk or none read back the same).
        var sizes = new[] { 10, FileContentStore.ChunkBytes, FileContentStore.ChunkBytes + 1, 2 * FileContentStore.ChunkBytes + 5, 0 };
        var expectedChunks = new[] { 1, 1, 2, 3, 1 };
        var contents = sizes.Select((n, i) => { var b = new byte[n]; new Random(i).NextBytes(b); return b; }).ToArray();
        var ids = sizes.Select(_ => "file-" + Guid.NewGuid().ToString("N")).ToArray();
        for (var i = 0; i < ids.Length; i++)
        {
            var (id, content, now) = (ids[i], contents[i], DateTime.UtcNow);
            object labels = provider == DatabaseProvider.Postgres ? new[] { "a", "b" } : "[\"a\",\"b\"]";
            await db.Database.ExecuteSqlRawAsync(
                "INSERT INTO files (\"Id\", \"TenantId\", \"FileName\", \"Purpose\", \"Bytes\", \"Sha256\", \"ExampleCount\", \"Labels\", \"HasTextPairs\", \"Content\", \"CreatedAt\") " +
                "VALUES ({0}, {1}, 'a.jsonl', 'fine-tune', {2}, 'x', 1, {3}, FALSE, {4}, {5})",
                id, tenant, (long)content.Length, labels, content, now);
        }

        await migrator.MigrateAsync();

        for (var i = 0; i < ids.Length; i++)
        {
            var chunks = await db.FileChunks.CountAsync(c => c.FileId == ids[i]);
            if (sizes[i] == 0)
                Assert.InRange(chunks, 0, 1);
            else
                Assert.Equal(expectedChunks[i], chunks);
            await using var stream = (await FileContentStore.OpenReadAsync(db, ids[i], CancellationToken.None))!;
            Assert.Equal(SHA256.HashData(contents[i]), await SHA256.HashDataAsync(stream));
        }
    }
}
