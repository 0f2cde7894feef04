using System.Text;
using System.Text.Json;

namespace Read.Domain.Backbones.Bert;

/// <summary>
/// Writes a small, randomly initialised BERT checkpoint in Hugging Face layout. Deterministic for a seed, so its
/// weights hash is stable: tests and the built-in <c>tiny-bert</c> backbone need no download.
/// </summary>
public static class TinyBertCheckpoint
{
    internal const string CommonWords =
        "the of and to in is was it for on with as at by this that be are from or an not but have has had you he she " +
        "they we i me my your his her their our its them him us who what when where why how which there here all any " +
        "some one two three four five six seven eight nine ten first last new old good great bad awful excellent " +
        "terrible best worst nice poor love loved hate hated like liked enjoy enjoyed happy sad fine ok okay amazing " +
        "horrible wonderful boring fun funny slow fast cheap expensive price quality product service food movie film " +
        "book phone battery screen sound music story plot actor acting place staff time day night year week money " +
        "work works worked working recommend would could should will can may might must do does did done make made " +
        "get got go went come came see saw look looked use used buy bought return returned very really so too more " +
        "most less much many little well just only also even still again never always often ever no yes not don't " +
        "about after before into over under up down out off than then now other same such own again because while " +
        "if until although though since every each both few more most again once back around through between " +
        "people thing things way man woman child friend family home car house room table water price order waste " +
        "disappointed disappointing disappointment perfect pleasant awesome fantastic brilliant beautiful ugly dirty " +
        "clean friendly rude helpful useless broken easy hard difficult simple comfortable terrible stupid smart " +
        "delicious tasty bland fresh cold hot warm right wrong true false better worse happy angry glad sorry " +
        "positive negative neutral yes no movie series show episode character characters ending script director";

    /// <summary>
    /// Writes config.json, model.safetensors (normal weights with std initializer_range, LayerNorms ones/zeros, biases zero)
    /// and vocab.txt. The vocabulary size in <paramref name="config"/> is
    /// replaced by the size of the generated vocabulary.
    /// </summary>
    public static void Write(string directory, BertConfig config, int seed, IEnumerable<string>? extraWords = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        var vocabulary = Vocabulary(extraWords);
        config = config with { VocabSize = vocabulary.Count };
        var errors = config.Validate();
        if (errors.Count > 0)
            throw new ArgumentException(string.Join(" ", errors), nameof(config));

        Directory.CreateDirectory(directory);
        var random = new Random(seed);
        var tensors = new Dictionary<string, SafeTensor>(StringComparer.Ordinal);
        int d = config.HiddenSize, f = config.IntermediateSize;

        void Normal(string name, params long[] shape)
        {
            var data = new float[shape.Aggregate(1L, (a, b) => a * b)];
            for (var i = 0; i < data.Length; i++)
                data[i] = (float)(config.InitializerRange * StandardNormal(random));
            tensors[name] = new SafeTensor(shape, data);
        }

        void Constant(string name, float value, params long[] shape)
        {
            var data = new float[shape.Aggregate(1L, (a, b) => a * b)];
            Array.Fill(data, value);
            tensors[name] = new SafeTensor(shape, data);
        }

        void Linear(string prefix, long output, long input)
        {
            Normal(prefix + ".weight", output, input);
            Constant(prefix + ".bias", 0f, output);
        }

        void LayerNorm(string prefix)
        {
            Constant(prefix + ".weight", 1f, d);
            Constant(prefix + ".bias", 0f, d);
        }

        Normal("embeddings.word_embeddings.weight", config.VocabSize, d);
        Normal("embeddings.position_embeddings.weight", config.MaxPositionEmbeddings, d);
        Normal("embeddings.token_type_embeddings.weight", config.TypeVocabSize, d);
        LayerNorm("embeddings.LayerNorm");
        for (var l = 0; l < config.NumHiddenLayers; l++)
        {
            var p = $"encoder.layer.{l}";
            Linear($"{p}.attention.self.query", d, d);
            Linear($"{p}.attention.self.key", d, d);
            Linear($"{p}.attention.self.value", d, d);
            Linear($"{p}.attention.output.dense", d, d);
            LayerNorm($"{p}.attention.output.LayerNorm");
            Linear($"{p}.intermediate.dense", f, d);
            Linear($"{p}.output.dense", d, f);
            LayerNorm($"{p}.output.LayerNorm");
        }

        File.WriteAllText(Path.Combine(directory, HuggingFaceCheckpoint.ConfigFile), JsonSerializer.Serialize(config, new JsonSerializerOptions { WriteIndented = true }));
        File.WriteAllLines(Path.Combine(directory, HuggingFaceCheckpoint.VocabularyFile), vocabulary, new UTF8Encoding(false));
        // Weights last, via a temporary file: a directory with model.safetensors is a complete checkpoint.
        var weights = Path.Combine(directory, HuggingFaceCheckpoint.WeightsFile);
        var temporary = weights + ".tmp-" + Guid.NewGuid().ToString("N");
        File.WriteAllBytes(temporary, SafeTensorsFile.Write(tensors));
        File.Move(temporary, weights, overwrite: true);
    }

    /// <summary>Special tokens, characters, ##-continuations and whole words: any lowercase ASCII text tokenizes without [UNK].</summary>
    public static IReadOnlyList<string> Vocabulary(IEnumerable<string>? extraWords = null)
    {
        var tokens = new List<string> { "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]" };
        const string letters = "abcdefghijklmnopqrstuvwxyz";
        const string digits = "0123456789";
        tokens.AddRange(letters.Select(c => c.ToString()));
        tokens.AddRange(digits.Select(c => c.ToString()));
        tokens.AddRange(Enumerable.Range(33, 94).Select(c => (char)c).Where(char.IsPunctuation).Concat(Enumerable.Range(33, 94).Select(c => (char)c).Where(char.IsSymbol)).Select(c => c.ToString()));
        tokens.AddRange(letters.Concat(digits).Select(c => "##" + c));
        var seen = new HashSet<string>(tokens, StringComparer.Ordinal);
        foreach (var word in CommonWords.Split(' ', StringSplitOptions.RemoveEmptyEntries).Concat(extraWords ?? []))
        {
            var w = word.Trim().ToLowerInvariant();
            // Only words the basic tokenizer keeps whole (no punctuation inside) are useful as vocabulary entries.
            if (w.Length > 1 && w.All(char.IsLetterOrDigit) && seen.Add(w))
                tokens.Add(w);
        }

        return tokens;
    }

    private static double StandardNormal(Random random)
    {
        // Box-Muller: System.Random is deterministic per seed on every platform, unlike libtorch's generators across versions.
        var u1 = 1.0 - random.NextDouble();
        var u2 = random.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2);
    }
}
