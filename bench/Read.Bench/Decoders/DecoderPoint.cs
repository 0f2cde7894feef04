using Read.Domain.Configuration;
using Read.Domain.SideNetwork;
using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Serialization;
using Read.Bench.Measurement;
using Read.Domain.Backbones;
using Read.Domain.Backbones.Bert;
using Read.Domain.Backbones.Llama;
using Read.Domain.Datasets;
using Read.Domain.FineTuning;
using TorchSharp;
using static TorchSharp.torch;

namespace Read.Bench.Decoders;

/// <summary>
/// One (shape, method) point, in this process: load the random checkpoint, train <c>steps</c> steps of batch
/// <c>batch</c> on synthetic text truncated to <c>max-length</c> tokens, print <c>RESULT {json}</c>. Methods:
/// read (ReadFineTuner, backbone resident while training), read-freed (the same, on the cache the read point built,
/// with the backbone's weights disposed before training), lora (rank-8 on q_proj and v_proj + head), full (every
/// LlamaModel parameter + head). lora and full train a linear head on the last real token, AdamW, grad-norm clip 1.
/// </summary>
internal static class DecoderPoint
{
    public sealed record Settings(string Directory, string CacheDirectory, string ShapeName, string Method, int Batch, int MaxLength, int Steps, string Dtype, string Pooling);

    public static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public static int Run(Settings s, CancellationToken ct)
    {
        var shape = DecoderShape.Find(s.ShapeName);
        var isRead = s.Method is "read" or "read-freed";
        double? matmul = null;
        if (isRead)
        {
            // The yardstick, in this process and before the backbone takes memory: best of two sizes.
            matmul = Math.Max(MatmulRate.MeasureGflops(1024), MatmulRate.MeasureGflops(2048, repeats: 3));
            Console.Error.WriteLine($"matmul {matmul:F1} GFLOP/s on {torch.get_num_threads()} threads");
        }

        var wall = Stopwatch.StartNew();
        var cpu0 = ProcessStats.CpuSeconds();
        var dtype = BackboneDtypes.Parse(s.Dtype) ?? throw new ArgumentException($"Unknown dtype '{s.Dtype}'.");
        WarnUnlessReset(ProcessStats.ResetPeakRss());
        // --dtype is what the backbone computes in (weights kept in it too), whatever this CPU's default policy would pick.
        var backbone = HuggingFaceCheckpoint.Load(shape.Name, s.Directory, dtype, compute: dtype);
        Collect();
        var loadSeconds = wall.Elapsed.TotalSeconds;
        var loadCpu = ProcessStats.CpuSeconds() - cpu0;
        var setupPeak = ProcessStats.PeakRssMb();
        Console.Error.WriteLine($"loaded {shape.Name} ({dtype.Name()}) in {loadSeconds:F1} s, peak {setupPeak:F0} MB, rss {ProcessStats.RssMb():F0} MB");

        var parameters = backbone.Model.parameters().Sum(p => p.numel());
        var dense = BackboneFlops.DenseParameters(backbone);
        var trainCount = s.Steps * s.Batch;
        var examples = Synthetic(trainCount + s.Batch, s.MaxLength, seed: 0);
        var train = examples.Take(trainCount).ToList();
        var validation = examples.Skip(trainCount).ToList();
        long tokensPerExample;
        using (var encoded = backbone.Encode(examples.Select(e => e.Text).ToList(), null, s.MaxLength))
            tokensPerExample = encoded.AttentionMask.sum().item<long>() / examples.Count;

        Outcome outcome = isRead
            ? RunRead(backbone, train, validation, s, freeBackbone: s.Method == "read-freed", ct)
            : RunBaseline(backbone, shape, train, s, full: s.Method == "full", ct);
        var jobCpu = ProcessStats.CpuSeconds() - cpu0;
        var jobWall = wall.Elapsed.TotalSeconds;
        if (!outcome.BackboneFreed)
            backbone.Dispose();

        double? precomputeGflops = outcome.PrecomputeSeconds is { } ps && outcome.PrecomputeTokens is { } pt && outcome.CacheHit == false
            ? pt / (double)tokensPerExample * BackboneFlops.ForExample(backbone.Shape, dense, (int)tokensPerExample) / ps / 1e9
            : null;
        var line = new DecoderPointResult(
            shape.Name, s.Method, dtype.Name(), parameters, dense, outcome.Trainable, s.Batch, s.MaxLength, s.Steps, train.Count,
            s.Batch * tokensPerExample, torch.get_num_threads(), R(loadSeconds), R(loadCpu), R(setupPeak), R(outcome.TrainStartRss),
            R(outcome.TrainPeak), R(outcome.TrainCpu), R(outcome.TrainWall), R(jobCpu), R(jobWall), R(ProcessStats.PeakRssMb()),
            outcome.BackboneFreed, outcome.FinalLoss, outcome.PrecomputeSeconds is { } p1 ? R(p1) : null,
            outcome.PrecomputeCpu is { } p2 ? R(p2) : null, outcome.PrecomputeTokens, outcome.PrecomputePeak is { } p3 ? R(p3) : null,
            outcome.CacheHit, matmul is { } m ? R(m) : null, precomputeGflops is { } g ? R(g) : null);
        Console.WriteLine("RESULT " + JsonSerializer.Serialize(line, Json));
        return 0;
    }

    private sealed record Outcome(
        long Trainable, double TrainStartRss, double TrainPeak, double TrainCpu, double TrainWall, double? FinalLoss, bool BackboneFreed,
        double? PrecomputeSeconds = null, double? PrecomputeCpu = null, long? PrecomputeTokens = null, double? PrecomputePeak = null, bool? CacheHit = null);

    // PEFT's default for Llama: q_proj and v_proj in every layer.
    private static readonly string[] LoraPaths = LlamaLoraTargets.Targets.Default.Select(LlamaLoraTargets.Targets.PathOf).ToArray();

    private static Outcome RunRead(Backbone backbone, List<LabeledExample> train, List<LabeledExample> validation, Settings s, bool freeBackbone, CancellationToken ct)
    {
        var hp = new ReadHyperparameters { Epochs = 1, BatchSize = s.Batch, MaxLength = s.MaxLength, Pooling = JsonEnum<Pooling>.Parse(s.Pooling), Seed = 0 };
        var probe = new StageProbe(backbone, freeBackbone);
        var result = new ReadFineTuner().Run(backbone, train, validation, FineTuneTask.Classification, hp, s.CacheDirectory, probe, ct);
        var m = result.Metrics;
        long tokens;
        using (var encoded = backbone.Encode(train.Concat(validation).Select(e => e.Text).ToList(), null, s.MaxLength))
            tokens = encoded.AttentionMask.sum().item<long>();
        return new Outcome(m.TrainableParameters, probe.TrainStartRss, probe.TrainPeak, probe.TrainCpu, probe.TrainWall, m.FinalTrainLoss, freeBackbone,
            m.PrecomputeSeconds, probe.PrecomputeCpu, tokens, probe.PrecomputePeak, m.CacheHit);
    }

    /// <summary>Samples CPU time and memory at ReadFineTuner's stage changes; resets VmHWM when training starts.</summary>
    private sealed class StageProbe(Backbone backbone, bool freeBackbone) : IFineTuneProgress
    {
        private double stageCpu;
        private readonly Stopwatch stageWall = new();

        public double PrecomputeCpu { get; private set; }
        public double PrecomputePeak { get; private set; }
        public double TrainStartRss { get; private set; }
        public double TrainPeak { get; private set; }
        public double TrainCpu { get; private set; }
        public double TrainWall { get; private set; }

        public void StageStarted(FineTuneStage stage)
        {
            switch (stage)
            {
                case FineTuneStage.Precompute:
                    WarnUnlessReset(ProcessStats.ResetPeakRss());
                    stageCpu = ProcessStats.CpuSeconds();
                    break;
                case FineTuneStage.Train:
                    PrecomputeCpu = ProcessStats.CpuSeconds() - stageCpu;
                    PrecomputePeak = ProcessStats.PeakRssMb();
                    if (freeBackbone)
                        backbone.Model.Dispose(); // training reads the cache only; the weights' memory goes back to the OS
                    Collect();
                    TrainStartRss = ProcessStats.RssMb();
                    WarnUnlessReset(ProcessStats.ResetPeakRss());
                    stageCpu = ProcessStats.CpuSeconds();
                    stageWall.Restart();
                    break;
                case FineTuneStage.Evaluate:
                    TrainCpu = ProcessStats.CpuSeconds() - stageCpu;
                    TrainWall = stageWall.Elapsed.TotalSeconds;
                    TrainPeak = ProcessStats.PeakRssMb();
                    break;
            }
        }

        public void Progress(FineTuneStage stage, double fraction)
        {
        }

        public void EpochCompleted(EpochMetrics metrics)
        {
        }
    }

    private static Outcome RunBaseline(Backbone backbone, DecoderShape shape, List<LabeledExample> train, Settings s, bool full, CancellationToken ct)
    {
        var model = (LlamaModel)backbone.Model;
        torch.manual_seed(0);
        var head = nn.Linear(shape.Hidden, 2);
        var adapters = new List<LoraAdapter>();
        var hooks = new List<IDisposable>();
        if (full)
        {
            foreach (var p in model.parameters())
                p.requires_grad = true;
        }
        else
        {
            foreach (var (name, module) in model.named_modules())
            {
                if (module is TorchSharp.Modules.Linear linear && LoraPaths.Any(path => name.EndsWith(path, StringComparison.Ordinal)))
                {
                    var adapter = new LoraAdapter(linear.weight!.shape[1], linear.weight.shape[0], rank: 8, alpha: 16);
                    hooks.Add(adapter.AttachTo(linear));
                    adapters.Add(adapter);
                }
            }
        }

        var trainable = (full ? model.parameters() : adapters.SelectMany(a => a.parameters())).Concat(head.parameters()).Where(p => p.requires_grad).ToList();
        var trainableCount = trainable.Sum(p => p.numel());
        using var optimizer = optim.AdamW(trainable, full ? 2e-5 : 2e-4, weight_decay: 0.01);

        // Pre-tokenise every batch: training steps measure the model, not the tokenizer.
        var batches = new List<(Tensor Ids, Tensor Mask, Tensor Labels)>();
        for (var start = 0; start < train.Count; start += s.Batch)
        {
            var chunk = train.Skip(start).Take(s.Batch).ToList();
            var encoded = backbone.Encode(chunk.Select(e => e.Text).ToList(), null, s.MaxLength);
            batches.Add((encoded.InputIds, encoded.AttentionMask, tensor(chunk.Select(e => e.Label == "a" ? 0L : 1L).ToArray())));
        }

        Collect();
        var trainStartRss = ProcessStats.RssMb();
        WarnUnlessReset(ProcessStats.ResetPeakRss());
        var cpu = ProcessStats.CpuSeconds();
        var clock = Stopwatch.StartNew();
        double lastLoss = double.NaN;
        for (var step = 0; step < s.Steps; step++)
        {
            ct.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            var (ids, mask, labels) = batches[step % batches.Count];
            var states = model.call(ids, mask);
            var last = states[^1]; // (B, S, d), after the final norm
            var position = mask.sum(1) - 1; // last real token (right padding)
            var pooled = last[arange(last.shape[0]), position]; // (B, d)
            var loss = nn.functional.cross_entropy(head.call(pooled), labels);
            loss.backward();
            nn.utils.clip_grad_norm_(trainable, 1.0);
            optimizer.step();
            // Gradients released before the next forward (set to none), as Hugging Face's Trainer does after each step.
            optimizer.zero_grad();
            lastLoss = loss.item<float>();
            // Some tensor handles made by backward/clip/step are in no dispose scope and keep their (gradient-sized)
            // storage until finalised; without a collection per step RSS grew by about a gradient's worth per step
            // (tiny-llama: +31 MB/step for 20 steps; Qwen2.5-0.5B full FT: +2 GB/step). Collect so that the peak is the
            // method's, not the finaliser queue's.
            GC.Collect();
            GC.WaitForPendingFinalizers();
            Console.Error.WriteLine($"  step {step + 1}/{s.Steps}: loss {lastLoss:F4}, {clock.Elapsed.TotalSeconds:F1} s, peak {ProcessStats.PeakRssMb():F0} MB");
        }

        var trainCpu = ProcessStats.CpuSeconds() - cpu;
        var trainWall = clock.Elapsed.TotalSeconds;
        var trainPeak = ProcessStats.PeakRssMb();
        foreach (var hook in hooks)
            hook.Dispose();
        return new Outcome(trainableCount, trainStartRss, trainPeak, trainCpu, trainWall, Math.Round(lastLoss, 6), false);
    }

    /// <summary>Texts of random lowercase words, long enough that every example is truncated to exactly max-length tokens.</summary>
    private static List<LabeledExample> Synthetic(int count, int maxLength, int seed)
    {
        var vocabulary = TinyBertCheckpoint.Vocabulary().Where(t => t.Length > 1 && t.All(char.IsAsciiLetterLower)).ToArray();
        var random = new Random(seed);
        return Enumerable.Range(0, count)
            .Select(i => new LabeledExample(string.Join(' ', Enumerable.Range(0, maxLength + 16).Select(_ => vocabulary[random.Next(vocabulary.Length)])), null, i % 2 == 0 ? "a" : "b"))
            .ToList();
    }

    private static double R(double value) => Math.Round(value, 3);

    private static void WarnUnlessReset(bool reset)
    {
        if (!reset)
            Console.Error.WriteLine("warning: cannot reset VmHWM; peaks include earlier phases");
    }

    private static void Collect() => GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);

}
