using Microsoft.EntityFrameworkCore;
using Read.Domain.Adapters;
using Read.Domain.Batches;
using Read.Domain.Files;
using Read.Domain.Idempotency;
using Read.Domain.Jobs;
using Read.Domain.Receipts;
using Read.Domain.Sweeps;
using Read.Domain.Tenants;
using Read.Domain.Webhooks;

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
    public DbSet<FileChunk> FileChunks => Set<FileChunk>();
    public DbSet<FineTuneJob> Jobs => Set<FineTuneJob>();
    public DbSet<JobEvent> JobEvents => Set<JobEvent>();
    public DbSet<AdapterRecord> Adapters => Set<AdapterRecord>();
    public DbSet<JobCheckpoint> JobCheckpoints => Set<JobCheckpoint>();
    public DbSet<IdempotencyRecord> IdempotencyKeys => Set<IdempotencyRecord>();
    public DbSet<WebhookEndpoint> WebhookEndpoints => Set<WebhookEndpoint>();
    public DbSet<JobStateChange> JobStateChanges => Set<JobStateChange>();
    public DbSet<WebhookDelivery> WebhookDeliveries => Set<WebhookDelivery>();
    public DbSet<WebhookDeliveryAttempt> WebhookDeliveryAttempts => Set<WebhookDeliveryAttempt>();
    public DbSet<JobMeasurement> JobMeasurements => Set<JobMeasurement>();
    public DbSet<Sweep> Sweeps => Set<Sweep>();
    public DbSet<PredictionBatch> Batches => Set<PredictionBatch>();

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
        model.Entity<FileChunk>(e =>
        {
            e.ToTable("file_chunks");
            e.HasKey(c => new { c.FileId, c.Index });
            e.Property(c => c.FileId).HasMaxLength(64);
            // Covers the orphan collection (newest chunk per file id) without reading any chunk's bytes.
            e.HasIndex(c => new { c.FileId, c.CreatedAt });
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
        OnWebhooksAndReceiptsCreating(model);
        model.Entity<PredictionBatch>(e =>
        {
            e.ToTable("batches");
            e.Property(b => b.Id).HasMaxLength(64);
            e.Property(b => b.Endpoint).HasMaxLength(64);
            e.Property(b => b.InputFileId).HasMaxLength(64);
            e.Property(b => b.CompletionWindow).HasMaxLength(16);
            e.Property(b => b.Status).HasMaxLength(16);
            e.Property(b => b.OutputFileId).HasMaxLength(64);
            e.Property(b => b.ErrorFileId).HasMaxLength(64);
            e.Property(b => b.RunOwner).HasMaxLength(128);
            e.HasIndex(b => new { b.TenantId, b.CreatedAt });
            e.HasIndex(b => b.Status);
            e.HasOne<Tenant>().WithMany().HasForeignKey(b => b.TenantId);
        });
    }

    private static void OnWebhooksAndReceiptsCreating(ModelBuilder model)
    {
        model.Entity<WebhookEndpoint>(e =>
        {
            e.ToTable("webhook_endpoints");
            e.Property(w => w.Id).HasMaxLength(64);
            e.Property(w => w.Url).HasMaxLength(2048);
            e.Property(w => w.Secret).HasMaxLength(128);
            e.HasIndex(w => new { w.TenantId, w.CreatedAt });
            e.HasOne<Tenant>().WithMany().HasForeignKey(w => w.TenantId);
        });
        model.Entity<JobStateChange>(e =>
        {
            // Written by the trigger, not by EF; no foreign key so the trigger never fails a job update.
            e.ToTable("job_state_changes");
            e.Property(c => c.JobId).HasMaxLength(64);
            e.Property(c => c.Status).HasMaxLength(16);
            e.HasIndex(c => c.FannedOutAt);
        });
        model.Entity<WebhookDelivery>(e =>
        {
            e.ToTable("webhook_deliveries");
            e.Property(d => d.Id).HasMaxLength(64);
            e.Property(d => d.EndpointId).HasMaxLength(64);
            e.Property(d => d.EventType).HasMaxLength(64);
            e.Property(d => d.Status).HasMaxLength(16);
            e.HasIndex(d => new { d.Status, d.NextAttemptAt });
            e.HasIndex(d => new { d.EndpointId, d.CreatedAt });
            e.HasIndex(d => new { d.EndpointId, d.ChangeId }).IsUnique();
            e.HasOne<WebhookEndpoint>().WithMany().HasForeignKey(d => d.EndpointId).OnDelete(DeleteBehavior.Cascade);
        });
        model.Entity<WebhookDeliveryAttempt>(e =>
        {
            e.ToTable("webhook_delivery_attempts");
            e.Property(a => a.DeliveryId).HasMaxLength(64);
            e.HasIndex(a => new { a.DeliveryId, a.Number });
            e.HasOne<WebhookDelivery>().WithMany().HasForeignKey(a => a.DeliveryId).OnDelete(DeleteBehavior.Cascade);
        });
        model.Entity<JobMeasurement>(e =>
        {
            e.ToTable("job_measurements");
            e.HasKey(m => m.JobId);
            e.Property(m => m.JobId).HasMaxLength(64);
            e.Property(m => m.Worker).HasMaxLength(256);
            e.HasOne<FineTuneJob>().WithMany().HasForeignKey(m => m.JobId).OnDelete(DeleteBehavior.Cascade);
        });
        model.Entity<Sweep>(e =>
        {
            e.ToTable("fine_tuning_sweeps");
            e.Property(w => w.Id).HasMaxLength(64);
            e.Property(w => w.BackboneId).HasMaxLength(128);
            e.Property(w => w.Metric).HasMaxLength(32);
            e.Property(w => w.Status).HasMaxLength(16).HasDefaultValue(SweepStatus.Running);
            e.Property(w => w.BestJobId).HasMaxLength(64);
            e.Property(w => w.PromotedAdapterId).HasMaxLength(64);
            e.HasIndex(w => new { w.TenantId, w.CreatedAt });
            e.HasIndex(w => w.Status); // the periodic pass looks for unfinished sweeps
            e.HasOne<Tenant>().WithMany().HasForeignKey(w => w.TenantId);
        });
    }
}
