using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Read.Domain.FineTuning;

/// <summary>
/// READ's optimiser, and through Read.Research every baseline's: AdamW with decoupled weight decay on matrices only
/// (biases and norm weights, all 1-D, undecayed), linear warmup over <c>warmupRatio</c> of the planned steps, then
/// linear decay to zero; the global gradient norm clipped before each step (0 = off). One implementation, so a
/// comparison between methods never measures two optimiser setups.
/// </summary>
internal sealed class AdamWSchedule : IDisposable
{
    private readonly AdamW optimizer;
    private readonly optim.lr_scheduler.LRScheduler schedule;
    private readonly IReadOnlyList<Parameter> parameters;
    private readonly double maxGradNorm;

    public AdamWSchedule(IEnumerable<Parameter> trainable, double learningRate, double weightDecay, double warmupRatio, double maxGradNorm, int totalSteps)
    {
        parameters = trainable.Where(p => p.requires_grad).ToList();
        if (parameters.Count == 0)
            throw new ArgumentException("Nothing to train.", nameof(trainable));
        var groups = new List<AdamW.ParamGroup>();
        var decayed = parameters.Where(p => p.dim() >= 2).ToList();
        var plain = parameters.Where(p => p.dim() < 2).ToList();
        if (decayed.Count > 0)
            groups.Add(new AdamW.ParamGroup(decayed, new AdamW.Options { weight_decay = weightDecay }));
        if (plain.Count > 0)
            groups.Add(new AdamW.ParamGroup(plain, new AdamW.Options { weight_decay = 0.0 }));
        optimizer = optim.AdamW(groups, learningRate, weight_decay: weightDecay);
        var warmup = (int)Math.Ceiling(warmupRatio * totalSteps);
        schedule = optim.lr_scheduler.LambdaLR(optimizer, step =>
            step < warmup ? (step + 1.0) / warmup : Math.Max(0.0, (double)(totalSteps - step) / Math.Max(1, totalSteps - warmup)));
        this.maxGradNorm = maxGradNorm;
    }

    /// <summary>Backward of <paramref name="loss"/>, clip, step, advance the schedule.</summary>
    public void Step(Tensor loss)
    {
        optimizer.zero_grad();
        loss.backward();
        if (maxGradNorm > 0)
            nn.utils.clip_grad_norm_(parameters, maxGradNorm);
        optimizer.step();
        schedule.step();
    }

    /// <summary>AdamW's moments, step counts and group options (the schedule is a function of the steps done).</summary>
    public void SaveState(BinaryWriter writer) => optimizer.save_state_dict(writer);

    /// <summary>
    /// Continues a run after <paramref name="stepsDone"/> steps: the optimizer state <see cref="SaveState"/> wrote, and the
    /// schedule advanced to the same position (LambdaLR sets lr = base · λ(step), so replaying it is exact).
    /// </summary>
    public void RestoreState(BinaryReader reader, int stepsDone)
    {
        optimizer.load_state_dict(reader);
        for (var i = 0; i < stepsDone; i++)
            schedule.step();
    }

    public void Dispose() => optimizer.Dispose();
}
