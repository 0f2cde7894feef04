using Read.Domain.SideNetwork;
using TorchSharp;
using static TorchSharp.torch;

namespace Read.Domain.Backbones;

/// <summary>
/// A frozen, loaded backbone: model, tokenizer and identity (weights hash). The only view of a backbone the side
/// network, cache, trainer, adapter, predictor, jobs and API have; the architecture behind it lives in its folder.
/// </summary>
public sealed class Backbone : IDisposable
{
    private readonly IBackboneModel? model;
    private readonly IBackboneTokenizer tokenizer;
    private readonly Func<ILayerStream>? layerStream;
    private readonly BackboneShape shape;
    private readonly Lock forwardLock = new();
    private long forwardCalls;

    /// <param name="layerStream">Opens the same checkpoint for layer-streamed precompute; null when it cannot stream.</param>
    internal Backbone(string id, BackboneArchitecture architecture, string modelType, IBackboneModel model, IBackboneTokenizer tokenizer, string weightsHash,
        Func<ILayerStream>? layerStream = null)
        : this(id, architecture, modelType, model, model.Shape, tokenizer, weightsHash, layerStream,
            model.Module.parameters().Sum(p => p.numel() * p.element_size()))
    {
    }

    /// <summary>
    /// A backbone whose weights stay on disk (docs/decisions/011-layer-streamed-precompute.md): tokenizer, identity and
    /// shape only; its states come from <paramref name="layerStream"/>, one layer resident at a time.
    /// </summary>
    internal Backbone(string id, BackboneArchitecture architecture, string modelType, BackboneShape shape, IBackboneTokenizer tokenizer, string weightsHash,
        Func<ILayerStream> layerStream, long weightBytes)
        : this(id, architecture, modelType, null, shape, tokenizer, weightsHash, layerStream, weightBytes)
    {
    }

    private Backbone(string id, BackboneArchitecture architecture, string modelType, IBackboneModel? model, BackboneShape shape, IBackboneTokenizer tokenizer,
        string weightsHash, Func<ILayerStream>? layerStream, long weightBytes)
    {
        Id = id;
        Architecture = architecture;
        ModelType = modelType;
        this.model = model;
        this.shape = shape;
        this.tokenizer = tokenizer;
        this.layerStream = layerStream;
        WeightsHash = weightsHash;
        WeightBytes = weightBytes;
        if (model is not null)
        {
            model.Module.eval();
            foreach (var parameter in model.Module.parameters())
                parameter.requires_grad = false;
        }

        // libtorch defaults to the physical cores it sees; a container's CPU quota is what .NET reports.
        if (torch.get_num_threads() < Environment.ProcessorCount)
            torch.set_num_threads(Environment.ProcessorCount);
    }

    public string Id { get; }

    /// <summary>Where the model's parameters live; batches from <see cref="Encode"/> are placed here too.</summary>
    public ReadDevice Device { get; init; } = ReadDevice.Cpu;

    /// <summary>What the frozen weights are kept in.</summary>
    public BackboneDtype StorageDtype { get; init; } = BackboneDtype.Float32;

    /// <summary>What the forward computes in (its hidden states are returned as float32 whatever this is).</summary>
    public BackboneDtype ComputeDtype { get; init; } = BackboneDtype.Float32;

    /// <summary>
    /// Empty for the float32 reference; otherwise the storage/compute pair, which enters the activation cache key so
    /// states computed at another precision are never reused as if they were float32's.
    /// </summary>
    public string PrecisionTag => StorageDtype == BackboneDtype.Float32 && ComputeDtype == BackboneDtype.Float32
        ? "" : $"weights={StorageDtype.Name()} compute={ComputeDtype.Name()}";

    public BackboneArchitecture Architecture { get; }

    /// <summary>config.json's model_type (bert, llama, mistral, qwen2).</summary>
    public string ModelType { get; }

    public BackboneShape Shape => shape;

    /// <summary>Whether the weights are in memory (a whole forward can run); false for a layer-streamed-only backbone.</summary>
    public bool IsResident => model is not null;

    /// <summary>Whether precompute can stream this backbone's layers from its checkpoint.</summary>
    public bool CanStream => layerStream is not null;

    /// <summary>
    /// Bytes of the backbone's weights in their storage dtype, what a resident backbone holds (a projection widens its
    /// weight only for the call); for a streamed-only backbone, what it would hold. The registry sizes by this.
    /// </summary>
    public long WeightBytes { get; }

    /// <summary>Poolings a head can read on this backbone (see <see cref="BackboneArchitectures.Poolings"/>).</summary>
    public IReadOnlyList<Pooling> Poolings => BackboneArchitectures.Poolings(Architecture);

    /// <summary>sha256 (lowercase hex) of the weights: the model.safetensors bytes, or every shard's (see HuggingFaceCheckpoint).</summary>
    public string WeightsHash { get; }

    /// <summary>Number of backbone forwards so far; training must never add to it.</summary>
    public long ForwardCalls => Interlocked.Read(ref forwardCalls);

    /// <summary>The model in eval mode with every parameter frozen.</summary>
    public nn.Module Model => (model ?? throw NotResident(BackboneTooLargeException.OnlinePredict, "its module")).Module;

    /// <summary>Opens the checkpoint for a layer-streamed forward (one layer's weights resident at a time).</summary>
    internal ILayerStream OpenLayerStream() =>
        (layerStream ?? throw new NotSupportedException($"Backbone '{Id}' cannot be layer-streamed (its weights are not a safetensors checkpoint)."))();

    /// <summary>The tokenizer settings the checkpoint declares (what the model was trained with).</summary>
    public TokenizerSettings TokenizerSettings => tokenizer.Settings;

    /// <summary>
    /// The checkpoint tokenizer's input per example, truncated to <paramref name="maxLength"/> (longest-first for
    /// pairs), right-padded to the longest example. Every example yields a row. <paramref name="settings"/> defaults
    /// to the checkpoint's own; an adapter passes the settings it was trained with.
    /// </summary>
    public EncodedBatch Encode(IReadOnlyList<string> texts, IReadOnlyList<string?>? pairs, int maxLength, TokenizerSettings? settings = null)
    {
        ArgumentNullException.ThrowIfNull(texts);
        if (pairs is not null && pairs.Count != texts.Count)
            throw new ArgumentException("pairs must have one entry per text.", nameof(pairs));
        var limit = Math.Min(maxLength, Shape.MaxPositionEmbeddings);
        if (limit < 4)
            throw new ArgumentOutOfRangeException(nameof(maxLength), "max length must be at least 4.");
        var encoded = tokenizer.Encode(texts, pairs, limit, settings ?? TokenizerSettings);
        return encoded.To(Device.Torch);
    }

    /// <summary>
    /// Backbone forward under no_grad (not inference mode: its tensors could not feed the side network's autograd
    /// graph later): L + 1 float32 tensors of (B, S, d); index 0 is the embedding output, i the output of layer i.
    /// </summary>
    public Tensor[] HiddenStates(EncodedBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        lock (forwardLock)
        {
            if (model is null)
                throw NotResident(BackboneTooLargeException.OnlinePredict, "a whole forward (online predict)");
            using var noGrad = no_grad();
            Interlocked.Increment(ref forwardCalls);
            if (!Device.Holds(batch.InputIds))
                throw new ArgumentException($"The batch is on {batch.InputIds.device}, the backbone on {Device}: encode it with Backbone.Encode.", nameof(batch));
            return model.Forward(batch);
        }
    }

    /// <summary>
    /// Runs <paramref name="action"/> holding the forward lock, as a forward (a training job's, say) does: tests stand in
    /// a long forward with it to see what waits behind one.
    /// </summary>
    internal void WhileForwardsHeld(Action action)
    {
        ArgumentNullException.ThrowIfNull(action);
        lock (forwardLock)
            action();
    }

    internal BackboneTooLargeException NotResident(string code, string what) => new(code,
        $"Backbone '{Id}' is registered layer-streamed: its {WeightBytes} bytes of weights do not fit the memory budget " +
        $"(Read:Training:MemoryBudgetBytes), so {what} cannot run; fine-tuning precomputes it one layer at a time.");

    public void Dispose()
    {
        model?.Dispose();
        tokenizer.Dispose();
    }
}
