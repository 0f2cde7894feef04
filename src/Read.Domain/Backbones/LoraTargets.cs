namespace Read.Domain.Backbones;

/// <summary>
/// The projections LoRA can adapt in one architecture's layers: the name a user gives each one, its module path inside
/// a layer, and the pair adapted by default (query and value, as Hu et al. do). Each architecture's folder declares its
/// own (<see cref="BackboneArchitectures.LoraTargets"/> picks it); the service never uses them, the baselines do.
/// </summary>
public sealed record LoraTargets(IReadOnlyList<(string Name, string Path)> Targets, IReadOnlyList<string> Default)
{
    public IReadOnlyList<string> Names => Targets.Select(t => t.Name).ToList();

    /// <summary>The module path inside one layer, e.g. query → attention.self.query (BERT), q_proj → self_attn.q_proj (Llama).</summary>
    public string PathOf(string name) =>
        Targets.FirstOrDefault(t => t.Name == name).Path
        ?? throw new ArgumentException($"'{name}' is not a LoRA target here (one of {string.Join(", ", Names)}).", nameof(name));
}
