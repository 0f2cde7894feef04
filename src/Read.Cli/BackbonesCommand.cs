using System.CommandLine;
using Read.Domain.Backbones;
using Read.Domain.Backbones.Bert.Onnx;

namespace Read.Cli;

/// <summary>`read backbones import-onnx | import-bundled`: turn ONNX BERT exports into Hugging Face checkpoints.</summary>
internal static class BackbonesCommand
{
    public static Command Create()
    {
        var onnx = new Option<string>("--onnx") { Description = "ONNX BERT encoder (float32, weights as initializers).", Required = true };
        var vocab = new Option<string>("--vocab") { Description = "WordPiece vocab.txt that goes with the model.", Required = true };
        var output = new Option<string>("--out") { Description = "Checkpoint directory to write (config.json, model.safetensors, vocab.txt).", Required = true };
        var id = new Option<string?>("--id") { Description = "Backbone id (default: the output directory's name)." };
        var cased = new Option<bool>("--cased") { Description = "The vocabulary is cased: do not lower-case text before tokenizing." };
        var overwrite = new Option<bool>("--overwrite") { Description = "Replace an existing checkpoint." };
        var importOnnx = new Command("import-onnx", "Import an ONNX BERT export into a Hugging Face checkpoint directory.")
        {
            onnx, vocab, output, id, cased, overwrite,
        };
        importOnnx.SetAction(parse =>
        {
            var result = OnnxBertImporter.ImportFiles(parse.GetValue(onnx)!, parse.GetValue(vocab)!, parse.GetValue(output)!,
                lowerCase: !parse.GetValue(cased), overwrite: parse.GetValue(overwrite));
            Print(parse.GetValue(id) ?? Path.GetFileName(result.Directory), result);
            return 0;
        });

        var bundledOutput = new Option<string>("--out") { Description = "Root directory; each backbone goes to <out>/<id>.", DefaultValueFactory = _ => "data/backbones" };
        var names = new Option<string[]>("--id") { Description = $"Bundled backbones to import (default: all of {string.Join(", ", BundledBackbones.All.Select(b => b.Id))}).", AllowMultipleArgumentsPerToken = true };
        var bundledOverwrite = new Option<bool>("--overwrite") { Description = "Replace existing checkpoints." };
        var importBundled = new Command("import-bundled", "Import the backbones that ship inside the SentenceTransformers.* packages.")
        {
            bundledOutput, names, bundledOverwrite,
        };
        importBundled.SetAction(parse =>
        {
            var selected = parse.GetValue(names) is { Length: > 0 } n ? n : BundledBackbones.All.Select(b => b.Id).ToArray();
            foreach (var backbone in selected)
            {
                var directory = Path.Combine(parse.GetValue(bundledOutput)!, backbone);
                if (!parse.GetValue(bundledOverwrite) && File.Exists(Path.Combine(directory, HuggingFaceCheckpoint.WeightsFile)))
                {
                    Console.WriteLine($"{backbone}: {Path.GetFullPath(directory)} already holds a checkpoint (pass --overwrite to replace it).");
                    continue;
                }

                Print(backbone, BundledBackbones.Import(backbone, directory, parse.GetValue(bundledOverwrite)));
            }

            return 0;
        });

        return new Command("backbones", "Backbone checkpoints.") { importOnnx, importBundled };
    }

    private static void Print(string id, OnnxImportResult result)
    {
        var c = result.Config;
        Console.WriteLine($"{id}: {c.NumHiddenLayers} layers, d={c.HiddenSize}, {c.NumAttentionHeads} heads, ffn={c.IntermediateSize}, vocab={c.VocabSize}, " +
            $"positions={c.MaxPositionEmbeddings}, act={c.HiddenAct}, eps={c.LayerNormEps:G3}; {result.Tensors} tensors, {result.Parameters:N0} encoder parameters");
        foreach (var file in result.Files)
        {
            var path = Path.Combine(result.Directory, file);
            Console.WriteLine($"  {path} ({new FileInfo(path).Length:N0} bytes)");
        }
    }
}
