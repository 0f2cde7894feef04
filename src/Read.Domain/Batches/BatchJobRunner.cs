using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Read.Domain.Adapters;
using Read.Domain.Backbones;
using Read.Domain.Configuration;
using Read.Domain.FineTuning;
using Read.Domain.Persistence;

namespace Read.Domain.Batches;

/// <summary>
/// Runs one batch prediction job (Hangfire queue "batch"): parse the input file, group the requests' inputs by backbone
/// and tokenization, answer each group through <see cref="BatchForward"/>, then publish the output and error files and
/// the final status in one transaction. A redelivery (the worker died) takes the batch over and starts from scratch;
/// the earlier run can no longer publish. Cancelling stops it at the next chunk and publishes what was answered.
/// </summary>
public sealed class BatchJobRunner(
    IDbContextFactory<ReadDbContext> dbFactory,
    BackboneRegistry backbones,
    IOptions<ReadOptions> options,
    IOptions<BatchOptions> batchOptions,
    ILogger<BatchJobRunner> logger)
{
    public const string Queue = "batch";

    public async Task RunAsync(string batchId, CancellationToken cancellationToken)
    {
        var owner = $"{Environment.MachineName}:{Environment.ProcessId}:{Guid.NewGuid():N}";
        var batch = await ClaimAsync(batchId, owner, cancellationToken);
        if (batch is null)
            return;
        logger.LogInformation("Batch {BatchId} started by {Owner}", batchId, owner);
        using var cancellation = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var watch = new WatchState();
        var results = new Results();
        var watcher = WatchAsync(batchId, owner, watch, results, cancellation);
        var scratch = Path.Combine(ScratchRoot, "batch-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(scratch);
        try
        {
            await ExecuteAsync(batch, results, scratch, cancellation.Token);
            await PublishAsync(batch, owner, results, scratch, BatchStatus.Completed);
            logger.LogInformation("Batch {BatchId} completed: {Completed} answered, {Failed} failed", batchId, results.Completed, results.Failed);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Worker stopping: Hangfire delivers the batch again and it starts over.
            logger.LogWarning("Batch {BatchId} interrupted by shutdown; it will be retried", batchId);
            throw;
        }
        catch (Exception) when (watch.Lost)
        {
            logger.LogWarning("Batch {BatchId}: taken over by another run; this one stops without publishing", batchId);
        }
        catch (OperationCanceledException) when (watch.Cancelled)
        {
            await PublishAsync(batch, owner, results, scratch, BatchStatus.Cancelled);
            logger.LogInformation("Batch {BatchId} cancelled with {Completed} requests answered", batchId, results.Completed);
        }
        catch (Exception e)
        {
            logger.LogError(e, "Batch {BatchId} failed", batchId);
            var code = e is BatchFailedException failed ? failed.Code : "batch_failed";
            await FailAsync(batchId, owner, code, e.Message, e is BatchFailedException { Line: { } line } ? line : null);
        }
        finally
        {
            await cancellation.CancelAsync();
            await watcher;
            try { Directory.Delete(scratch, recursive: true); } catch (IOException) { }
        }
    }

    private string ScratchRoot => string.IsNullOrWhiteSpace(batchOptions.Value.ScratchDirectory)
        ? Path.Combine(options.Value.ActivationCacheDirectory, "batches") : batchOptions.Value.ScratchDirectory;

    /// <summary>validating (or a lapsed run's in_progress/finalizing) → in_progress under this run, in one conditional UPDATE.</summary>
    private async Task<PredictionBatch?> ClaimAsync(string batchId, string owner, CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var now = DateTime.UtcNow;
        var claimed = await db.Batches
            .Where(b => b.Id == batchId && (b.Status == BatchStatus.Validating || b.Status == BatchStatus.InProgress || b.Status == BatchStatus.Finalizing))
            .ExecuteUpdateAsync(s => s
                .SetProperty(b => b.Status, BatchStatus.InProgress)
                .SetProperty(b => b.InProgressAt, b => b.InProgressAt ?? now)
                .SetProperty(b => b.FinalizingAt, (DateTime?)null)
                .SetProperty(b => b.RunOwner, owner), ct);
        if (claimed == 0)
        {
            // Cancelled before any run started: nothing was answered.
            await db.Batches.Where(b => b.Id == batchId && b.Status == BatchStatus.Cancelling)
                .ExecuteUpdateAsync(s => s.SetProperty(b => b.Status, BatchStatus.Cancelled).SetProperty(b => b.CancelledAt, now), ct);
            logger.LogInformation("Batch {BatchId} is missing, finished or cancelled; nothing to do", batchId);
            return null;
        }

        return await db.Batches.AsNoTracking().SingleAsync(b => b.Id == batchId, ct);
    }

    private async Task ExecuteAsync(PredictionBatch batch, Results results, string scratch, CancellationToken ct)
    {
        List<BatchInputFile.Line> lines;
        Dictionary<string, string> adapterBackbones;
        var read = options.Value;
        await using (var db = await dbFactory.CreateDbContextAsync(ct))
        {
            var content = await BatchFileStore.ReadAsync(db, batch.TenantId, batch.InputFileId, ct)
                ?? throw new BatchFailedException("input_file_missing", $"Input file {batch.InputFileId} no longer exists.");
            var parsed = BatchInputFile.Parse(content, batchOptions.Value.MaxRequests);
            if (!parsed.Succeeded)
                throw new BatchFailedException(parsed.ErrorCode!, parsed.ErrorMessage!, parsed.ErrorLine);
            lines = [.. parsed.Lines];
            await db.Batches.Where(b => b.Id == batch.Id).ExecuteUpdateAsync(s => s.SetProperty(b => b.TotalRequests, lines.Count), ct);
            results.Start(lines);
            for (var l = 0; l < lines.Count; l++)
            {
                var (inputs, topK, problem) = BatchRequestBodies.Read(lines[l], read.MaxPredictBatch, read.MaxPredictTextChars, batch.DefaultTopK, batch.MaxTopK);
                if (problem is not null)
                    results.Fail(l, problem);
                else
                    results.Accept(l, inputs!, topK);
            }

            var ids = results.AdapterIds().ToList();
            adapterBackbones = await db.Adapters.AsNoTracking().Where(a => ids.Contains(a.Id) && a.TenantId == batch.TenantId)
                .Select(a => new { a.Id, a.BackboneId }).ToDictionaryAsync(a => a.Id, a => a.BackboneId, ct);
            // Another tenant's adapter is as unknown as a missing one, as online.
            results.FailUnknownAdapters(adapterBackbones.Keys.ToHashSet(StringComparer.Ordinal));
        }

        var loaded = new Dictionary<string, (Backbone Backbone, LoadedAdapter Adapter)>(StringComparer.Ordinal);
        try
        {
            foreach (var id in results.AdapterIds())
            {
                try
                {
                    await using var db = await dbFactory.CreateDbContextAsync(ct);
                    var artifact = await db.Adapters.AsNoTracking().Where(a => a.Id == id && a.TenantId == batch.TenantId).Select(a => a.Artifact).SingleOrDefaultAsync(ct);
                    if (artifact is null)
                    {
                        results.FailAdapter(id, (i, index) => BatchProblem.NotFound(index is null ? $"No adapter '{id}'." : $"inputs[{index}]: no adapter '{id}'.", index));
                        continue;
                    }

                    var backbone = backbones.Get(adapterBackbones[id]);
                    loaded[id] = (backbone, AdapterArtifact.Load(artifact, backbone));
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    logger.LogWarning(e, "Batch {BatchId}: adapter {AdapterId} could not be loaded", batch.Id, id);
                    results.FailAdapter(id, (_, _) => BatchProblem.Of(500, "adapter_unavailable", "Internal error", $"Adapter '{id}' or its backbone could not be loaded: {e.Message}"));
                }
            }

            // One precompute per backbone and tokenization: the union of its texts, every layer once.
            var groups = results.PendingInputs()
                .Where(p => loaded.ContainsKey(p.Input.AdapterId))
                .GroupBy(p => (loaded[p.Input.AdapterId].Backbone, BatchForward.GroupKey(loaded[p.Input.AdapterId].Adapter)));
            foreach (var group in groups)
            {
                ct.ThrowIfCancellationRequested();
                var pending = group.ToList();
                var backbone = group.Key.Backbone;
                var items = pending.Select(p => new BatchForward.Item(loaded[p.Input.AdapterId].Adapter, p.Input.Text, p.Input.TextPair)).ToList();
                try
                {
                    // Answers are recorded chunk by chunk: a cancel publishes every request whose inputs are all answered.
                    await Task.Run(() => BatchForward.Predict(backbone, items, batchOptions.Value.ChunkTexts, scratch,
                        (k, prediction) => results.Answer(pending[k].Line, pending[k].Index, prediction),
                        answered => logger.LogDebug("Batch {BatchId}: {Answered}/{Inputs} inputs on backbone {BackboneId}", batch.Id, answered, items.Count, backbone.Id),
                        ct), ct);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    logger.LogError(e, "Batch {BatchId}: predictions on backbone {BackboneId} failed", batch.Id, backbone.Id);
                    var problem = e is NonFiniteValueException nonFinite
                        ? BatchProblem.Of(500, nonFinite.Code, "Internal error", nonFinite.Message)
                        : BatchProblem.Of(500, "prediction_failed", "Internal error", $"The predictions could not be computed: {e.Message}");
                    foreach (var line in pending.Select(p => p.Line).Distinct())
                        results.Fail(line, problem);
                }
            }
        }
        finally
        {
            foreach (var (_, adapter) in loaded.Values)
                adapter.Dispose();
        }
    }

    /// <summary>Output and error files, counts and the final status in one transaction, only while this run owns the batch.</summary>
    private async Task PublishAsync(PredictionBatch batch, string owner, Results results, string scratch, string status)
    {
        // Not cancellable: a cancelled batch still publishes what it answered.
        await using var db = await dbFactory.CreateDbContextAsync();
        var from = status == BatchStatus.Cancelled ? BatchStatus.Cancelling : BatchStatus.InProgress;
        var now = DateTime.UtcNow;
        if (status == BatchStatus.Completed)
        {
            var finalizing = await db.Batches.Where(b => b.Id == batch.Id && b.RunOwner == owner && b.Status == BatchStatus.InProgress)
                .ExecuteUpdateAsync(s => s.SetProperty(b => b.Status, BatchStatus.Finalizing).SetProperty(b => b.FinalizingAt, now));
            if (finalizing == 0)
            {
                // Cancelled just as the last chunk finished: publish as cancelled (every request was answered).
                if (!await db.Batches.AnyAsync(b => b.Id == batch.Id && b.RunOwner == owner && b.Status == BatchStatus.Cancelling))
                    return;
                (status, from) = (BatchStatus.Cancelled, BatchStatus.Cancelling);
            }
            else
                from = BatchStatus.Finalizing;
        }

        var (outputPath, errorPath, completed, failed) = results.Write(scratch);
        await using var tx = await db.Database.BeginTransactionAsync();
        var outputId = completed > 0 ? await BatchFileStore.AddAsync(db, batch.TenantId, $"{batch.Id}_output.jsonl", outputPath, completed, CancellationToken.None) : null;
        var errorId = failed > 0 ? await BatchFileStore.AddAsync(db, batch.TenantId, $"{batch.Id}_error.jsonl", errorPath, failed, CancellationToken.None) : null;
        await db.SaveChangesAsync();
        var cancelled = status == BatchStatus.Cancelled;
        var updated = await db.Batches.Where(b => b.Id == batch.Id && b.RunOwner == owner && b.Status == from)
            .ExecuteUpdateAsync(s => s
                .SetProperty(b => b.Status, status)
                .SetProperty(b => b.OutputFileId, outputId)
                .SetProperty(b => b.ErrorFileId, errorId)
                .SetProperty(b => b.CompletedRequests, completed)
                .SetProperty(b => b.FailedRequests, failed)
                .SetProperty(b => b.CompletedAt, b => cancelled ? b.CompletedAt : now)
                .SetProperty(b => b.CancelledAt, b => cancelled ? now : b.CancelledAt)
                .SetProperty(b => b.RunOwner, (string?)null));
        if (updated == 0)
        {
            await tx.RollbackAsync();
            logger.LogWarning("Batch {BatchId} left {Status} under this run before it could publish; nothing published", batch.Id, from);
            return;
        }

        await tx.CommitAsync();
    }

    private async Task FailAsync(string batchId, string owner, string code, string message, int? line)
    {
        await using var db = await dbFactory.CreateDbContextAsync();
        var errors = JsonSerializer.Serialize(new[] { new BatchError(code, message, line) }, JsonDefaults.SnakeCase);
        var now = DateTime.UtcNow;
        await db.Batches.Where(b => b.Id == batchId && b.RunOwner == owner && !BatchStatus.Terminal.Contains(b.Status))
            .ExecuteUpdateAsync(s => s
                .SetProperty(b => b.Status, BatchStatus.Failed)
                .SetProperty(b => b.FailedAt, now)
                .SetProperty(b => b.ErrorsJson, errors)
                .SetProperty(b => b.RunOwner, (string?)null));
    }


    /// <summary>
    /// Polls the row: the user cancelling (cancelling) or another run taking the batch over both stop this run. Between
    /// polls it records the request counts so far, as OpenAI's request_counts move while a batch runs.
    /// </summary>
    private async Task WatchAsync(string batchId, string owner, WatchState state, Results results, CancellationTokenSource cancellation)
    {
        try
        {
            while (!cancellation.IsCancellationRequested)
            {
                await Task.Delay(options.Value.CancellationPollInterval, cancellation.Token);
                await using var db = await dbFactory.CreateDbContextAsync(cancellation.Token);
                var row = await db.Batches.AsNoTracking().Where(b => b.Id == batchId).Select(b => new { b.Status, b.RunOwner }).SingleOrDefaultAsync(cancellation.Token);
                if (row is null || row.RunOwner != owner)
                    state.Lost = true;
                else if (row.Status == BatchStatus.Cancelling)
                    state.Cancelled = true;
                else
                {
                    var (completed, failed) = results.Counts();
                    await db.Batches.Where(b => b.Id == batchId && b.RunOwner == owner && b.Status == BatchStatus.InProgress)
                        .ExecuteUpdateAsync(u => u.SetProperty(b => b.CompletedRequests, completed).SetProperty(b => b.FailedRequests, failed), cancellation.Token);
                    continue;
                }

                await cancellation.CancelAsync();
                return;
            }
        }
        catch (OperationCanceledException)
        {
            // The run ended.
        }
        catch (Exception e)
        {
            logger.LogWarning(e, "Cancellation watcher for batch {BatchId} stopped", batchId);
        }
    }

    private sealed class WatchState
    {
        public volatile bool Lost;
        public volatile bool Cancelled;
    }

    internal sealed class BatchFailedException(string code, string message, int? line = null) : Exception(message)
    {
        public string Code { get; } = code;
        public int? Line { get; } = line;
    }

    /// <summary>
    /// Each request line's state: its problem, or its inputs and the predictions answered so far. Small: top-k decoded
    /// predictions, never states.
    /// </summary>
    private sealed class Results
    {
        private List<BatchInputFile.Line> lines = [];
        private BatchProblem?[] problems = [];
        private IReadOnlyList<BatchRequestBodies.Input>?[] inputs = [];
        private Prediction?[][] answers = [];
        private int[] topK = [];

        public int Completed { get; private set; }
        public int Failed { get; private set; }

        public void Start(List<BatchInputFile.Line> all)
        {
            lines = all;
            problems = new BatchProblem?[all.Count];
            inputs = new IReadOnlyList<BatchRequestBodies.Input>?[all.Count];
            answers = new Prediction?[all.Count][];
            topK = new int[all.Count];
        }

        public void Fail(int line, BatchProblem problem) => problems[line] ??= problem;

        public void Accept(int line, IReadOnlyList<BatchRequestBodies.Input> requestInputs, int k)
        {
            inputs[line] = requestInputs;
            answers[line] = new Prediction?[requestInputs.Count];
            topK[line] = k;
        }

        private IEnumerable<int> Open() => Enumerable.Range(0, lines.Count).Where(l => problems[l] is null && inputs[l] is not null);

        public IEnumerable<string> AdapterIds() => Open().SelectMany(l => inputs[l]!.Select(i => i.AdapterId)).Distinct(StringComparer.Ordinal);

        public void FailUnknownAdapters(HashSet<string> known)
        {
            foreach (var l in Open().ToList())
            {
                var request = inputs[l]!;
                var i = Enumerable.Range(0, request.Count).FirstOrDefault(i => !known.Contains(request[i].AdapterId), -1);
                if (i < 0)
                    continue;
                problems[l] = lines[l].AdapterId is { } id
                    ? BatchProblem.NotFound($"No adapter '{id}'.")
                    : BatchProblem.NotFound($"inputs[{i}]: no adapter '{request[i].AdapterId}'.", i);
            }
        }

        /// <summary>Fails every open line that uses <paramref name="adapterId"/>; <paramref name="problem"/> gets (line, input index or null for an adapter url).</summary>
        public void FailAdapter(string adapterId, Func<int, int?, BatchProblem> problem)
        {
            foreach (var l in Open().ToList())
            {
                var i = Enumerable.Range(0, inputs[l]!.Count).FirstOrDefault(i => inputs[l]![i].AdapterId == adapterId, -1);
                if (i >= 0)
                    problems[l] = problem(l, lines[l].AdapterId is null ? i : null);
            }
        }

        public IEnumerable<(int Line, int Index, BatchRequestBodies.Input Input)> PendingInputs() =>
            Open().SelectMany(l => inputs[l]!.Select((input, i) => (l, i, input)));

        public void Answer(int line, int index, Prediction prediction) => answers[line][index] = prediction;

        /// <summary>Requests answered and failed so far; read by the watcher while the run writes, so a snapshot, not exact.</summary>
        public (int Completed, int Failed) Counts()
        {
            var (problemsNow, answersNow) = (problems, answers);
            int completed = 0, failed = 0;
            for (var l = 0; l < problemsNow.Length; l++)
            {
                if (problemsNow[l] is not null)
                    failed++;
                else if (answersNow[l] is { } a && a.All(p => p is not null))
                    completed++;
            }

            return (completed, failed);
        }

        /// <summary>Writes the output (answered requests) and error (failed requests) files; requests left unanswered by a cancel appear in neither.</summary>
        public (string Output, string Errors, int Completed, int Failed) Write(string directory)
        {
            var output = Path.Combine(directory, "output.jsonl");
            var errors = Path.Combine(directory, "errors.jsonl");
            int completed = 0, failed = 0;
            using (var outputStream = File.Create(output))
            using (var errorStream = File.Create(errors))
            {
                for (var l = 0; l < lines.Count; l++)
                {
                    if (problems[l] is { } problem)
                    {
                        WriteLine(errorStream, lines[l], problem.Status, JsonSerializer.SerializeToElement(problem, JsonDefaults.SnakeCase));
                        failed++;
                    }
                    else if (inputs[l] is not null && answers[l].All(a => a is not null))
                    {
                        WriteLine(outputStream, lines[l], 200, Body(l));
                        completed++;
                    }
                }
            }

            Completed = completed;
            Failed = failed;
            return (output, errors, completed, failed);
        }

        private JsonElement Body(int l)
        {
            var predictions = answers[l]!;
            if (lines[l].AdapterId is { } adapterId)
                return JsonSerializer.SerializeToElement(new BatchAdapterPredictResponse(adapterId,
                    predictions.Select(p => new BatchPredictionResponse(p!.Label, TopK(p, topK[l]), p.Value)).ToList()), JsonDefaults.SnakeCase);
            return JsonSerializer.SerializeToElement(new BatchMixedPredictResponse(predictions.Select((p, i) =>
                new BatchMixedPredictionResponse(inputs[l]![i].AdapterId, p!.Label, TopK(p, topK[l]), p.Value)).ToList()), JsonDefaults.SnakeCase);
        }

        // As the online endpoints: the k most probable labels (ties in label order), none for regression.
        private static Dictionary<string, double>? TopK(Prediction prediction, int k) => prediction.Value is not null
            ? null
            : prediction.Probabilities.OrderByDescending(p => p.Value).Take(k).ToDictionary(p => p.Key, p => p.Value, StringComparer.Ordinal);

        private static void WriteLine(Stream stream, BatchInputFile.Line line, int status, JsonElement body)
        {
            using (var writer = new Utf8JsonWriter(stream))
            {
                writer.WriteStartObject();
                writer.WriteString("id", "batch_req_" + Guid.NewGuid().ToString("N"));
                writer.WriteString("custom_id", line.CustomId);
                writer.WriteStartObject("response");
                writer.WriteNumber("status_code", status);
                writer.WriteString("request_id", "req_" + Guid.NewGuid().ToString("N"));
                writer.WritePropertyName("body");
                body.WriteTo(writer);
                writer.WriteEndObject();
                writer.WriteNull("error");
                writer.WriteEndObject();
            }

            stream.WriteByte((byte)'\n');
        }
    }
}

/// <summary>A batch-level error (the batch failed): OpenAI's errors.data item.</summary>
public sealed record BatchError(string Code, string Message, int? Line);
