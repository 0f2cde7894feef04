namespace Read.Research.Baselines;

/// <summary>A fine-tuning method measured against READ on the same backbone, data and budget.</summary>
public enum BaselineMethod
{
    /// <summary>Every backbone weight and the head.</summary>
    Full,

    /// <summary>Low-rank updates of chosen projections (query and value by default); backbone frozen.</summary>
    Lora,

    /// <summary>Every bias term of the backbone (Linear and LayerNorm) and the head.</summary>
    BitFit,

    /// <summary>A bottleneck adapter after every layer's feed-forward block, the encoder's LayerNorms and the head.</summary>
    Adapters,

    /// <summary>The head alone, on mean-pooled features of the frozen backbone computed once.</summary>
    Probe,

    /// <summary>READ through <see cref="FineTuning.ReadFineTuner"/> and its activation cache.</summary>
    Read,

    /// <summary>READ with the frozen backbone run on every step instead of a cache.</summary>
    ReadNoCache,
}
