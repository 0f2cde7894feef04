using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Read.Domain.Files;
using Read.Domain.Jobs;
using Read.Domain.Persistence;
using Read.Domain.Tenants;

namespace Read.Api.Tests;

/// <summary>
/// A fresh, migrated Postgres database with one tenant, for tests of job-row protocols (claims, leases, recovery) that
/// need the real database but no hosted service.
/// </summary>
internal sealed class JobsDatabase : IAsyncDisposable
{
    private readonly PostgresDatabase _database;
    private readonly ServiceProvider _services;

    private JobsDatabase(PostgresDatabase database, ServiceProvider services, Guid tenantId)
    {
        _database = database;
        _services = services;
        TenantId = tenantId;
    }

    public Guid TenantId { get; }

    public string ConnectionString => _database.ConnectionString;

    public IDbContextFactory<ReadDbContext> Factory => _services.GetRequiredService<IDbContextFactory<ReadDbContext>>();

    public static async Task<JobsDatabase> CreateAsync()
    {
        var database = await PostgresDatabase.CreateAsync();
        var services = new Microsoft.Extensions.DependencyInjection.ServiceCollection()
            .AddReadDatabase(DatabaseProvider.Postgres, database.ConnectionString).BuildServiceProvider();
        var factory = services.GetRequiredService<IDbContextFactory<ReadDbContext>>();
        await using var db = await factory.CreateDbContextAsync();
        await db.Database.MigrateAsync();
        var tenant = new Tenant { Id = Guid.NewGuid(), Name = "jobs", CreatedAt = DateTime.UtcNow };
        db.Tenants.Add(tenant);
        await db.SaveChangesAsync();
        return new JobsDatabase(database, services, tenant.Id);
    }

    public async Task<string> InsertJobAsync(
        string status, DateTime? createdAt = null, string? leaseOwner = null, DateTime? leaseExpiresAt = null,
        string backboneId = "tiny-bert", string trainingFileId = "file-none", string hyperparametersJson = "{}")
    {
        await using var db = await Factory.CreateDbContextAsync();
        var jobId = "ftjob-" + Guid.NewGuid().ToString("N");
        db.Jobs.Add(new FineTuneJob
        {
            Id = jobId, TenantId = TenantId, BackboneId = backboneId, TrainingFileId = trainingFileId, HyperparametersJson = hyperparametersJson,
            Status = status, CreatedAt = createdAt ?? DateTime.UtcNow, LeaseOwner = leaseOwner, LeaseExpiresAt = leaseExpiresAt,
        });
        await db.SaveChangesAsync();
        return jobId;
    }

    /// <summary>A training file row, as the upload endpoint stores one.</summary>
    public async Task<string> InsertFileAsync(byte[] jsonl, IReadOnlyList<string> labels, int examples)
    {
        await using var db = await Factory.CreateDbContextAsync();
        var fileId = "file-" + Guid.NewGuid().ToString("N");
        db.Files.Add(new DatasetFile
        {
            Id = fileId, TenantId = TenantId, FileName = "train.jsonl", Purpose = "fine-tune", Bytes = jsonl.LongLength,
            Sha256 = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(jsonl)), ExampleCount = examples,
            Labels = labels.ToList(), HasTextPairs = false, CreatedAt = DateTime.UtcNow,
        });
        await db.SaveChangesAsync();
        await FileContentStore.WriteAsync(db, fileId, new MemoryStream(jsonl), long.MaxValue, CancellationToken.None);
        return fileId;
    }

    public async Task<FineTuneJob> JobAsync(string jobId)
    {
        await using var db = await Factory.CreateDbContextAsync();
        return await db.Jobs.AsNoTracking().SingleAsync(j => j.Id == jobId);
    }

    public async ValueTask DisposeAsync()
    {
        await _services.DisposeAsync();
        await _database.DisposeAsync();
    }
}
