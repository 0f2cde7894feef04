using Read.Domain.Backbones;
using Read.Domain.Backbones.Bert;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Read.Research.Baselines;

#pragma warning disable IDE1006 // field names are state-dict keys: bert.*, lora.*, adapters.*, classifier.*

/// <summary>
/// A BERT backbone with a masked-mean-pooled linear head (<c>classifier</c>, d → classes) and the trainable parts of one
/// baseline method: which backbone tensors train (all, biases, LayerNorms or none) and the LoRA or adapter modules
/// hooked into it. Takes ownership of <paramref name="bert"/>: give it a freshly loaded model, never a shared one.
/// The backbone always runs in eval mode: BertModules implement no dropout, so every method trains without it.
/// </summary>
internal sealed class BaselineClassifier : nn.Module<Tensor, Tensor, Tensor, Tensor>
{
    private readonly BertModel bert;
    private readonly ModuleDict<LoraLinear>? lora;
    private readonly ModuleDict<BottleneckAdapter>? adapters;
    private readonly Linear classifier;
    private readonly List<IDisposable> hooks = [];

    public BaselineClassifier(BertModel bert, BaselineConfig config, int classes) : base(nameof(BaselineClassifier))
    {
        ArgumentNullException.ThrowIfNull(bert);
        ArgumentNullException.ThrowIfNull(config);
        var errors = config.Validate();
        if (errors.Count > 0)
            throw new ArgumentException(string.Join(" ", errors), nameof(config));
        this.bert = bert;
        Method = config.Method;
        var c = bert.Config;
        var linears = bert.named_modules().Where(m => m.module is Linear).ToDictionary(m => m.name, m => (Linear)m.module, StringComparer.Ordinal);

        foreach (var (name, parameter) in bert.named_parameters())
        {
            parameter.requires_grad = config.Method switch
            {
                BaselineMethod.Full => true,
                BaselineMethod.BitFit => name.EndsWith(".bias", StringComparison.Ordinal),
                // Houlsby et al. train the layer-normalisation parameters of every layer next to the adapters.
                BaselineMethod.Adapters => name.StartsWith("encoder.", StringComparison.Ordinal) && name.Contains(".LayerNorm.", StringComparison.Ordinal),
                _ => false,
            };
        }

        var loraTargets = new List<(string Path, LoraLinear Module)>();
        if (config.Method == BaselineMethod.Lora)
        {
            for (var l = 0; l < c.NumHiddenLayers; l++)
            {
                foreach (var target in config.LoraTargets)
                {
                    var path = $"{BertLoraTargets.LayerPath(l)}.{BertLoraTargets.Targets.PathOf(target)}";
                    var linear = linears[path];
                    loraTargets.Add((path, new LoraLinear(linear.weight!.shape[1], linear.weight.shape[0], config.LoraRank, config.LoraAlpha)));
                }
            }

            // Module names cannot hold dots: encoder.layer.0.attention.self.query → encoder_layer_0_attention_self_query.
            lora = nn.ModuleDict(loraTargets.Select(t => (t.Path.Replace('.', '_'), t.Module)).ToArray());
        }

        if (config.Method == BaselineMethod.Adapters)
            adapters = nn.ModuleDict(Enumerable.Range(0, c.NumHiddenLayers).Select(l => ($"layer_{l}", new BottleneckAdapter(c.HiddenSize, config.AdapterSize))).ToArray());

        classifier = nn.Linear(c.HiddenSize, classes);
        RegisterComponents();

        // Hooks after registration: the modules above are owned (and saved) here, the backbone only calls them.
        foreach (var (path, module) in loraTargets)
            hooks.Add(module.AttachTo(linears[path]));

        if (adapters is not null)
        {
            for (var l = 0; l < c.NumHiddenLayers; l++)
                hooks.Add(adapters[$"layer_{l}"].AttachTo(linears[$"encoder.layer.{l}.output.dense"]));
        }

        bert.eval();
    }

    public BaselineMethod Method { get; }

    public BertModel Bert => bert;

    public int Classes => (int)classifier.weight!.shape[0];

    public long TrainableParameters => parameters().Where(p => p.requires_grad).Sum(p => p.numel());

    /// <summary>Trainable tensors by state-dict name: what "save only the adapter" writes.</summary>
    public IEnumerable<(string Name, Parameter Parameter)> TrainableTensors() => named_parameters().Where(p => p.parameter.requires_grad);

    /// <summary>(B, S) ids, mask, token types in; logits (B, classes) out.</summary>
    public override Tensor forward(Tensor inputIds, Tensor attentionMask, Tensor tokenTypeIds)
    {
        using var pooled = Pool(inputIds, attentionMask, tokenTypeIds);
        return Head(pooled);
    }

    /// <summary>Masked mean of the final hidden state over the non-padding positions: (B, d).</summary>
    public Tensor Pool(Tensor inputIds, Tensor attentionMask, Tensor tokenTypeIds)
    {
        using var scope = NewDisposeScope();
        var hidden = bert.call(inputIds, attentionMask, tokenTypeIds); // L + 1 × (B, S, d)
        var mask = attentionMask.unsqueeze(-1).to_type(ScalarType.Float32); // (B, S, 1)
        var pooled = (hidden[^1] * mask).sum(1) / mask.sum(1).AtLeast(1); // (B, d)
        return pooled.MoveToOuterDisposeScope();
    }

    /// <summary>Pooled features (B, d) in, logits (B, classes) out.</summary>
    public Tensor Head(Tensor pooled) => classifier.call(pooled);

    /// <summary>A LoRA target's path inside a layer.</summary>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            foreach (var hook in hooks)
                hook.Dispose();
            hooks.Clear();
        }

        base.Dispose(disposing);
    }
}
