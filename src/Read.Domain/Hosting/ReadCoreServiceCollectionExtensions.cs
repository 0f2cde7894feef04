using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Read.Domain.Backbones;
using Read.Domain.Batches;
using Read.Domain.Configuration;
using Read.Domain.FineTuning;
using Read.Domain.Jobs;
using Read.Domain.Persistence;
using Read.Domain.Receipts;

namespace Read.Domain.Hosting;

public static class ReadCoreServiceCollectionExtensions
{
    /// <summary>What both the API and the worker need: the database, the backbone registry and the job runner.</summary>
    public static IServiceCollection AddReadCore(this IServiceCollection services, DatabaseProvider provider, string connectionString)
    {
        services.AddReadDatabase(provider, connectionString);
        services.AddSingleton(sp =>
        {
            var backboneOptions = sp.GetRequiredService<IOptions<BackboneOptions>>().Value;
            var device = ReadDevice.Resolve(sp.GetRequiredService<IOptions<ReadOptions>>().Value.Device);
            return new BackboneRegistry(backboneOptions, sp.GetRequiredService<IOptions<FineTuning.TrainingOptions>>().Value, device);
        });
        // Runs with the hosts' ValidateOnStart on ReadOptions: a device that cannot be used stops start-up with the reason.
        services.AddSingleton<IValidateOptions<ReadOptions>, ReadDeviceValidation>();
        services.AddTransient<FineTuneJobRunner>();
        services.AddTransient<BatchJobRunner>();
        services.AddOptions<BatchOptions>().BindConfiguration(BatchOptions.Section)
            .Validate(o => o.MaxRequests > 0 && o.ChunkTexts > 0, "Read:Batches:MaxRequests and ChunkTexts must be positive").ValidateOnStart();
        services.AddSingleton<IJobStageListener, JobMeasurementListener>(); // the receipt's CPU, RSS and token counts
        services.AddOptions<ActivationCacheStoreOptions>().BindConfiguration(ActivationCacheStoreOptions.Section);
        services.AddSingleton<IJobStageListener, ActivationCacheStoreListener>(); // the cache disk budget
        return services;
    }

    private sealed class ReadDeviceValidation : IValidateOptions<ReadOptions>
    {
        public ValidateOptionsResult Validate(string? name, ReadOptions options) =>
            ReadDevice.TryResolve(options.Device, out _, out var error) ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(error!);
    }

    /// <summary>Backbones live under the service's data directory unless configured elsewhere.</summary>
    public static IServiceCollection AddReadBackboneDefaults(this IServiceCollection services) =>
        services.AddSingleton<IPostConfigureOptions<BackboneOptions>>(sp => new PostConfigureOptions<BackboneOptions, IOptions<ReadOptions>>(
            Options.DefaultName, sp.GetRequiredService<IOptions<ReadOptions>>(),
            (backbones, read) =>
            {
                if (backbones.DataDirectory is "" or "data")
                    backbones.DataDirectory = read.Value.DataDirectory;
            }));
}
