namespace Read.Api.Tests;

/// <summary>
/// Every test that hosts the service shares this collection: Hangfire's JobStorage.Current and JobActivator.Current are
/// process-wide, so two hosts must never run side by side.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ServiceCollection : ICollectionFixture<PostgresServiceFixture>
{
    public const string Name = "service";
}
