using Microsoft.EntityFrameworkCore;
using Read.Domain.Adapters;
using Read.Domain.Files;
using Read.Domain.Idempotency;
using Read.Domain.Jobs;
using Read.Domain.Tenants;

namespace Read.Domain.Persistence;

/// <summary>
/// The service's database. Provider-specific subclasses (<see cref="PostgresReadDbContext"/>,
/// <see cref="SqliteReadDbContext"/>) exist only so each provider keeps its own migrations.
/// </summary>
public abstract class ReadDbContext(DbContextOptions options) : DbContext(options)
{
    public DbSet<Tenant> Tenants => Set<Tenant>();
    public DbSet<ApiKey> ApiKeys => Set<ApiKey>();
    public DbSet<DatasetFile> Files => Set<DatasetFile>();
    public DbSet<FineTuneJob> Jobs => Set<FineTuneJob>();
    public DbSet<JobEvent> JobEvents => Set<JobEvent>();
    public DbSet<AdapterRecord> Adapters => Set<AdapterRecord>();
    public DbSet<JobCheckpoint> JobCheckpoints => Set<JobCheckpoint>();
    public DbSet<IdempotencyRecord> IdempotencyKeys => Set<IdempotencyRecord>();

    protected override void OnModelCreating(ModelBuilder model)
    {
        model.Entity<Tenant>(e =>
        {
            e.ToTable("tenants");
            e.Property(t => t.Name).HasMaxLength(200);
        });
        model.Entity<ApiKey>(e =>
        {
            e.ToTable("api_keys");
            e.Property(k => k.KeyHash).HasMaxLength(64);
            e.Property(k => k.Prefix).HasMaxLength(16);
            e.HasIndex(k => k.KeyHash).IsUnique();
            e.HasOne<Tenant>().WithMany().HasForeignKey(k => k.TenantId);
        });
        model.Entity<DatasetFile>(e =>
        {
            e.ToTable("files");
            e.Property(f => f.Id).HasMaxLength(64);
            e.Property(f => f.FileName).HasMaxLength(256);
            e.Property(f => f.Purpose).HasMaxLength(32);
            e.Property(f => f.Sha256).HasMaxLength(64);
            e.HasIndex(f => new { f.TenantId, f.CreatedAt });
            e.HasOne<Tenant>().WithMany().HasForeignKey(f => f.TenantId);
        });
        model.Entity<FineTuneJob>(e =>
        {
            e.ToTable("fine_tuning_jobs");
            e.Property(j => j.Id).HasMaxLength(64);
            e.Property(j => j.BackboneId).HasMaxLength(128);
            e.Property(j => j.Status).HasMaxLength(16);
            e.Property(j => j.Task).HasMaxLength(16).HasDefaultValue(FineTuneTasks.Classification);
            e.Property(j => j.Stage).HasMaxLength(16);
            e.Property(j => j.ErrorCode).HasMaxLength(64);
            e.Property(j => j.FromCheckpointId).HasMaxLength(64);
            e.HasIndex(j => new { j.TenantId, j.CreatedAt });
            e.HasIndex(j => j.Status);
            e.HasOne<Tenant>().WithMany().HasForeignKey(j => j.TenantId);
        });
        model.Entity<JobEvent>(e =>
        {
            e.ToTable("job_events");
            e.Property(v => v.Level).HasMaxLength(16);
            e.HasIndex(v => new { v.JobId, v.Id });
            e.HasOne<FineTuneJob>().WithMany().HasForeignKey(v => v.JobId);
        });
        model.Entity<AdapterRecord>(e =>
        {
            e.ToTable("adapters");
            e.Property(a => a.Id).HasMaxLength(64);
            e.Property(a => a.BackboneId).HasMaxLength(128);
            e.Property(a => a.Sha256).HasMaxLength(64);
            e.HasIndex(a => new { a.TenantId, a.CreatedAt });
            e.HasIndex(a => a.JobId).IsUnique();
            e.HasOne<Tenant>().WithMany().HasForeignKey(a => a.TenantId);
        });
        model.Entity<JobCheckpoint>(e =>
        {
            e.ToTable("job_checkpoints");
            e.Property(c => c.Id).HasMaxLength(64);
            e.Property(c => c.JobId).HasMaxLength(64);
            e.HasIndex(c => new { c.JobId, c.Epoch }).IsUnique();
            e.HasOne<FineTuneJob>().WithMany().HasForeignKey(c => c.JobId);
        });
        model.Entity<IdempotencyRecord>(e =>
        {
            e.ToTable("idempotency_keys");
            e.HasKey(k => new { k.TenantId, k.Scope, k.Key });
            e.Property(k => k.Scope).HasMaxLength(32);
            e.Property(k => k.Key).HasMaxLength(IdempotencyRecord.MaxKeyLength);
            e.Property(k => k.RequestHash).HasMaxLength(64);
            e.Property(k => k.ResourceId).HasMaxLength(64);
            e.HasOne<Tenant>().WithMany().HasForeignKey(k => k.TenantId);
        });
    }
}
