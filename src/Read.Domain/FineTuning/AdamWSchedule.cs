using Read.Domain.Backbones;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Read.Domain.FineTuning;

/// <summary>
/// READ's optimiser, and through Read.Research every baseline's: AdamW with decoupled weight decay on matrices only
/// (biases and norm weights, all 1-D, undecayed), linear warmup over <c>warmupRatio</c> of the planned steps, then
/// linear decay to zero; the global gradient norm clipped before each step (0 = off). One implementation, so a
/// comparison between methods never measures two optimiser setups.
/// <para>
/// The update is TorchSharp's AdamW, operation for operation (AdamWScheduleTests checks it against TorchSharp.Modules.AdamW
/// with LambdaLR), written here because TorchSharp's (0.107) passes libtorch numbers as
/// finalizable Scalars it does not keep: a garbage collection during its step freed one that libtorch was still
/// reading ("Unknown scalar type", or a wrong number read silently). Every Scalar here is kept (<see cref="KeptScalars"/>).
/// </para>
/// </summary>
internal sealed class AdamWSchedule : IDisposable
{
    private const double Beta1 = 0.9, Beta2 = 0.999, Epsilon = 1e-8; // TorchSharp's and PyTorch's defaults

    private readonly IReadOnlyList<Parameter> parameters;
    private readonly double[] weightDecay; // per parameter: the group's
    private readonly Moments?[] moments; // per parameter, created at its first step (a parameter without a gradient has none)
    private readonly double learningRate;
    private readonly double maxGradNorm;
    private readonly int warmup;
    private readonly int totalSteps;
    private int stepsDone;

    public AdamWSchedule(IEnumerable<Parameter> trainable, double learningRate, double weightDecay, double warmupRatio, double maxGradNorm, int totalSteps)
    {
        parameters = trainable.Where(p => p.requires_grad).ToList();
        if (parameters.Count == 0)
            throw new ArgumentException("Nothing to train.", nameof(trainable));
        this.weightDecay = parameters.Select(p => p.dim() >= 2 ? weightDecay : 0.0).ToArray();
        moments = new Moments?[parameters.Count];
        this.learningRate = learningRate;
        this.maxGradNorm = maxGradNorm;
        this.totalSteps = totalSteps;
        warmup = (int)Math.Ceiling(warmupRatio * totalSteps);
    }

    /// <summary>The schedule's factor for the step after <paramref name="step"/> steps (LambdaLR's λ).</summary>
    private double Factor(int step) =>
        step < warmup ? (step + 1.0) / warmup : Math.Max(0.0, (double)(totalSteps - step) / Math.Max(1, totalSteps - warmup));

    /// <summary>Backward of <paramref name="loss"/>, clip, step, advance the schedule.</summary>
    public void Step(Tensor loss)
    {
        foreach (var p in parameters)
        {
            using var grad = p.grad;
            grad?.zero_(); // as TorchSharp's zero_grad: gradients kept and zeroed, not dropped
        }
        loss.backward();
        if (maxGradNorm > 0)
            nn.utils.clip_grad_norm_(parameters, maxGradNorm);
        var lr = learningRate * Factor(stepsDone);
        using (no_grad())
        {
            for (var i = 0; i < parameters.Count; i++)
                Update(i, lr);
        }

        stepsDone++;
    }

    private void Update(int i, double lr)
    {
        var parameter = parameters[i];
        using var scope = NewDisposeScope();
        var grad = parameter.grad;
        if (grad is null)
            return;
        var state = moments[i] ??= new Moments(zeros_like(parameter).DetachFromDisposeScope(), zeros_like(parameter).DetachFromDisposeScope());
        state.Step++;
        var biasCorrection1 = 1 - Math.Pow(Beta1, state.Step);
        var biasCorrection2 = 1 - Math.Pow(Beta2, state.Step);
        if (weightDecay[i] != 0)
            parameter.MultiplyInPlace(1 - lr * weightDecay[i]); // TorchSharp multiplies by 1 too; skipping that is exact
        state.ExpAvg.MultiplyInPlace(Beta1).AddInPlace(grad, 1 - Beta1);
        state.ExpAvgSq.MultiplyInPlace(Beta2).AddProductInPlace(grad, grad, 1 - Beta2);
        var denominator = state.ExpAvgSq.sqrt().DividedBy(Math.Sqrt(biasCorrection2)).AddInPlace(Epsilon);
        parameter.AddQuotientInPlace(state.ExpAvg, denominator, -(lr / biasCorrection1));
    }

    /// <summary>AdamW's moments and step counts, per parameter in order (the schedule is a function of the steps done).</summary>
    public void SaveState(BinaryWriter writer)
    {
        writer.Write(parameters.Count);
        foreach (var state in moments)
            writer.Write(state?.Step ?? 0L);
        var tensors = moments.SelectMany((m, i) => m is null
            ? []
            : new[] { KeyValuePair.Create($"{i}.exp_avg", m.ExpAvg), KeyValuePair.Create($"{i}.exp_avg_sq", m.ExpAvgSq) });
        TrainingCheckpoint.WriteWeights(writer, tensors);
    }

    /// <summary>
    /// Continues a run after <paramref name="stepsDone"/> steps: the optimizer state <see cref="SaveState"/> wrote, and the
    /// schedule at the same position. Moments go onto each parameter's device.
    /// </summary>
    public void RestoreState(BinaryReader reader, int stepsDone)
    {
        var count = reader.ReadInt32();
        if (count != parameters.Count)
            throw new InvalidDataException($"The checkpoint's optimizer has {count} parameters, this run's {parameters.Count}.");
        var steps = Enumerable.Range(0, count).Select(_ => reader.ReadInt64()).ToArray();
        var tensors = TrainingCheckpoint.ReadWeights(reader);
        try
        {
            for (var i = 0; i < count; i++)
            {
                moments[i]?.Dispose();
                moments[i] = null;
                if (steps[i] == 0)
                    continue;
                if (!tensors.TryGetValue($"{i}.exp_avg", out var expAvg) || !tensors.TryGetValue($"{i}.exp_avg_sq", out var expAvgSq)
                    || !expAvg.shape.SequenceEqual(parameters[i].shape) || !expAvgSq.shape.SequenceEqual(parameters[i].shape))
                    throw new InvalidDataException($"The checkpoint's optimizer state for parameter {i} is missing or of another shape.");
                moments[i] = new Moments(expAvg.to(parameters[i].dtype, parameters[i].device), expAvgSq.to(parameters[i].dtype, parameters[i].device)) { Step = steps[i] };
            }
        }
        finally
        {
            foreach (var t in tensors.Values)
                t.Dispose();
        }

        this.stepsDone = stepsDone;
    }

    public void Dispose()
    {
        foreach (var state in moments)
            state?.Dispose();
    }

    private sealed class Moments(Tensor expAvg, Tensor expAvgSq) : IDisposable
    {
        public Tensor ExpAvg { get; } = expAvg;

        public Tensor ExpAvgSq { get; } = expAvgSq;

        public long Step { get; set; }

        public void Dispose()
        {
            ExpAvg.Dispose();
            ExpAvgSq.Dispose();
        }
    }
}
