namespace Read.Domain.SideNetwork;

/// <summary>
/// Which backbone layers a state tensor (N, C, d) carries on its channel axis, in ascending order, and what each
/// feeds: the recurrence inputs (the selected layers), the final layer φ_L that the correction is added to, and,
/// for an embedding initial state, the embedding output φ_0 (layer 0).
/// </summary>
public sealed record LayerLayout
{
    private LayerLayout(IReadOnlyList<int> channels, IReadOnlyList<int> inputLayers, int finalLayer, bool embedding)
    {
        Channels = channels;
        InputLayers = inputLayers;
        FinalLayer = finalLayer;
        Embedding = embedding;
        InputIndices = inputLayers.Select(l => (long)IndexOf(l)).ToArray();
        FinalIndex = IndexOf(finalLayer);
        EmbeddingIndex = embedding ? IndexOf(0) : -1;
    }

    /// <summary>Backbone layers on the channel axis, ascending; 0 is the embedding output.</summary>
    public IReadOnlyList<int> Channels { get; }

    /// <summary>Layers that feed the recurrence, in order (1-based).</summary>
    public IReadOnlyList<int> InputLayers { get; }

    /// <summary>L: the backbone's last layer, whose state is corrected.</summary>
    public int FinalLayer { get; }

    /// <summary>Whether layer 0 is carried for the initial state.</summary>
    public bool Embedding { get; }

    internal long[] InputIndices { get; }

    internal int FinalIndex { get; }

    internal int EmbeddingIndex { get; }

    /// <summary>True when every channel feeds the recurrence, in order, so no gather is needed.</summary>
    internal bool InputsAreAllChannels => InputIndices.Length == Channels.Count && InputIndices.Select((v, i) => v == i).All(x => x);

    /// <param name="layers">Layers feeding the recurrence (1-based, ascending); null for all of 1..L.</param>
    /// <param name="numLayers">L, the backbone's depth.</param>
    /// <param name="embedding">Also carry layer 0 for h_0 = W_0 · norm(φ_0).</param>
    public static LayerLayout Create(IReadOnlyList<int>? layers, int numLayers, bool embedding)
    {
        if (numLayers < 1)
            throw new ArgumentOutOfRangeException(nameof(numLayers), "A backbone has at least one layer.");
        var inputs = layers is null ? Enumerable.Range(1, numLayers).ToList() : layers.ToList();
        if (inputs.Count == 0 || inputs.Any(l => l < 1 || l > numLayers) || inputs.Zip(inputs.Skip(1)).Any(p => p.First >= p.Second))
            throw new ArgumentException($"layers must be ascending, distinct and within 1..{numLayers} (got [{string.Join(", ", inputs)}]).", nameof(layers));
        var channels = inputs.Append(numLayers).Concat(embedding ? [0] : []).Distinct().Order().ToList();
        return new LayerLayout(channels, inputs, numLayers, embedding);
    }

    private int IndexOf(int layer)
    {
        for (var i = 0; i < Channels.Count; i++)
        {
            if (Channels[i] == layer)
                return i;
        }

        throw new InvalidOperationException($"Layer {layer} is not carried.");
    }
}
