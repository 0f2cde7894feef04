using System.Text.Json;

namespace Read.Api.Tests;

/// <summary>"auto" hyperparameters: the job object shows the numbers chosen, and keeps the request beside them.</summary>
[Collection(ServiceCollection.Name)]
public sealed class AutoHyperparameterTests(PostgresServiceFixture service)
{
    [Fact]
    public async Task Job_WithAutoValues_ShowsTheResolvedNumbersAndKeepsTheRequest()
    {
        using var client = await service.Api.CreateTenantClientAsync("auto-values");
        var fileId = await client.UploadOkAsync(TestData.Jsonl(TestData.Sentiment(24, seed: 51)));
        var created = await client.CreateJobOkAsync(new
        {
            backbone = "tiny-bert", training_file = fileId,
            hyperparameters = new { epochs = "auto", learning_rate = "auto", r = "auto", batch_size = 8, max_length = 32 },
        });
        Assert.Equal("auto", created.GetProperty("hyperparameters").GetProperty("epochs").GetString());
        Assert.False(created.TryGetProperty("requested_hyperparameters", out _));

        var job = await client.WaitForJobAsync(created.GetProperty("id").GetString()!);
        Assert.True(job.GetProperty("status").GetString() == "succeeded", job.ToString());
        // docs/decisions/015: under 500 training examples (24 here, fewer after the holdout) → 20 epochs, 5e-3, r 32.
        var resolved = job.GetProperty("hyperparameters");
        Assert.Equal(20, resolved.GetProperty("epochs").GetInt32());
        Assert.Equal(5e-3, resolved.GetProperty("learning_rate").GetDouble(), 12);
        Assert.Equal(32, resolved.GetProperty("r").GetInt32());
        Assert.Equal(8, resolved.GetProperty("batch_size").GetInt32());
        var requested = job.GetProperty("requested_hyperparameters");
        foreach (var name in new[] { "epochs", "learning_rate", "r" })
            Assert.Equal(JsonValueKind.String, requested.GetProperty(name).ValueKind);
        Assert.Equal("auto", requested.GetProperty("epochs").GetString());
        Assert.Equal(8, requested.GetProperty("batch_size").GetInt32());

        // The listing shows the same resolved numbers.
        var listed = (await (await client.GetAsync("/v1/fine-tuning/jobs")).JsonAsync()).GetProperty("data").EnumerateArray()
            .Single(j => j.GetProperty("id").GetString() == job.GetProperty("id").GetString());
        Assert.Equal(20, listed.GetProperty("hyperparameters").GetProperty("epochs").GetInt32());
    }

    [Fact]
    public async Task Job_WithoutAutoValues_HasNoRequestedHyperparameters()
    {
        using var client = await service.Api.CreateTenantClientAsync("no-auto-values");
        var fileId = await client.UploadOkAsync(TestData.Jsonl(TestData.Sentiment(16, seed: 52)));
        var created = await client.CreateJobOkAsync(new { backbone = "tiny-bert", training_file = fileId, hyperparameters = new { epochs = 1 } });
        var job = await client.WaitForJobAsync(created.GetProperty("id").GetString()!);
        Assert.Equal(1, job.GetProperty("hyperparameters").GetProperty("epochs").GetInt32());
        Assert.False(job.TryGetProperty("requested_hyperparameters", out _));
    }
}
