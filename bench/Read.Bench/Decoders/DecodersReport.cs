using System.Globalization;
using System.Text;
using Read.Bench.Reporting;

namespace Read.Bench.Decoders;

/// <summary>docs/benchmarks/decoders.md (+ .csv): the figures, the machine, the command, and the aims checked.</summary>
internal static class DecodersReport
{
    public static (string Markdown, string Csv) Build(IReadOnlyList<DecodersCommand.Row> rows, DecodersCommand.RunSettings s, string command)
    {
        var table = new MarkdownTable("shape", "params (M)", "method", "trainable params", "training peak RSS MB", "RSS at training start MB",
            "training increment MB", "CPU s / step", "CPU s / job", "wall s / step", "precompute tok/s", "precompute % of matmul", "note");
        foreach (var row in rows)
        {
            var r = row.Result;
            var millions = row.Shape.Parameters / 1e6;
            if (r is null)
            {
                table.Add(row.Shape.Name, millions, row.Method, null, null, null, null, null, null, null, null, null, row.Note);
                continue;
            }

            string? precomputeRate = null, share = null;
            if (r.PrecomputeGflops is { } g && r.PrecomputeSeconds is { } ps && r.PrecomputeTokens is { } tokens)
            {
                precomputeRate = (tokens / ps).ToString("F0", CultureInfo.InvariantCulture);
                share = (100 * g / r.MatmulGflops!.Value).ToString("F0", CultureInfo.InvariantCulture) + "%";
            }

            var note = r.Method switch
            {
                "read" => "backbone resident while training; job includes precompute",
                "read-freed" => "backbone weights disposed before training; cache reused" + (r.CacheHit == true ? "" : " (cache was rebuilt)"),
                "lora" => "rank 8, α 16, q_proj + v_proj, + head",
                _ => "all parameters + head, AdamW",
            };
            table.Add(r.Shape, millions, r.Method, r.TrainableParameters, r.TrainPeakRssMb, r.TrainStartRssMb, r.TrainPeakRssMb - r.TrainStartRssMb,
                r.TrainCpuSeconds / r.Steps, r.JobCpuSeconds, r.TrainWallSeconds / r.Steps, precomputeRate, share, note);
        }

        var precompute = new MarkdownTable("shape", "tokens", "precompute s", "precompute CPU s", "tok/s", "tok / CPU s", "achieved GFLOP/s",
            "matmul GFLOP/s (same process)", "% of matmul", "precompute peak RSS MB");
        foreach (var r in rows.Select(x => x.Result).OfType<DecoderPointResult>().Where(r => r.PrecomputeGflops is not null))
        {
            precompute.Add(r.Shape, r.PrecomputeTokens, r.PrecomputeSeconds, r.PrecomputeCpuSeconds, r.PrecomputeTokens / r.PrecomputeSeconds,
                r.PrecomputeTokens / r.PrecomputeCpuSeconds, r.PrecomputeGflops, r.MatmulGflops, 100 * r.PrecomputeGflops / r.MatmulGflops,
                r.PrecomputePeakRssMb);
        }

        var aims = new MarkdownTable("shape", "aim", "measured", "met?");
        foreach (var group in rows.GroupBy(r => r.Shape.Name))
        {
            var byMethod = group.ToDictionary(r => r.Method);
            double? Peak(string m) => byMethod.TryGetValue(m, out var x) ? x.Result?.TrainPeakRssMb : null;
            var full = Peak("full");
            var fullLabel = "full FT measured";
            if (full is null && byMethod.TryGetValue("full", out var skipped))
            {
                full = skipped.EstimateBytes / 1e6;
                fullLabel = "full FT estimate (not run)";
            }

            foreach (var read in new[] { "read", "read-freed" })
            {
                if (Peak(read) is not { } mine)
                    continue;
                if (full is { } f)
                    aims.Add(group.Key, $"{read} ≤ 15% of full FT training memory", $"{mine:F0} / {f:F0} MB ({fullLabel}) = {100 * mine / f:F1}%", mine <= 0.15 * f ? "yes" : "no");
                if (Peak("lora") is { } lora)
                    aims.Add(group.Key, $"{read} ≤ 50% of LoRA training memory", $"{mine:F0} / {lora:F0} MB = {100 * mine / lora:F1}%", mine <= 0.5 * lora ? "yes" : "no");
            }

            if (byMethod.TryGetValue("read", out var r) && r.Result is { PrecomputeGflops: { } g, MatmulGflops: { } mm })
                aims.Add(group.Key, "precompute ≥ 60% of the matmul rate", $"{g:F1} / {mm:F1} GFLOP/s = {100 * g / mm:F0}%", g >= 0.6 * mm ? "yes" : "no");
        }

        var quick = rows.All(r => r.Shape.Name.StartsWith("tiny", StringComparison.Ordinal));
        var md = new StringBuilder()
            .AppendLine(quick ? "# Decoder LLMs: READ vs LoRA vs full fine-tuning (quick smoke run, tiny shapes)" : "# Decoder LLMs: READ vs LoRA vs full fine-tuning")
            .AppendLine()
            .AppendLine($"Measured {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC on {Machine()}. Command:")
            .AppendLine().AppendLine("```").AppendLine(command).AppendLine("```").AppendLine()
            .AppendLine($"Llama-family checkpoints with random weights (stored {s.Storage}, computed in {s.Dtype}) in the published shapes of " +
                        "Qwen2.5-0.5B (qwen2: q/k/v biases, tied embeddings, GQA 14/2) and Llama-3.2-1B (tied, GQA 32/8, llama3 rope scaling), " +
                        "written tensor by tensor by bench/Read.Bench/Decoders/RandomDecoderCheckpoint.cs and loaded with HuggingFaceCheckpoint.Load. " +
                        $"Each point is its own process. Training: {s.Steps} steps of batch {s.Batch}, synthetic text truncated to {s.MaxLength} tokens " +
                        $"(every example exactly {s.MaxLength}), two classes. READ: ReadFineTuner, defaults (GRU, r 64, all layers) with pooling {s.Pooling}, " +
                        $"one epoch over {s.Steps} × {s.Batch} examples plus {s.Batch} validation examples. LoRA: rank 8, α 16 on q_proj and v_proj, " +
                        "frozen base; full: every LlamaModel parameter. Both train a linear head on the last real token's final hidden state " +
                        "with AdamW (lr 2e-4 / 2e-5, weight decay 0.01, grad-norm clip 1).")
            .AppendLine()
            .AppendLine("How to read the numbers:")
            .AppendLine()
            .AppendLine("- **Training peak RSS** is VmHWM from a reset (`/proc/self/clear_refs`) just before the first training step to the end of " +
                        "the last one. It includes everything resident then: the backbone's weights (for READ too, unless `read-freed`), " +
                        "gradients and AdamW state (allocated on the first step), activations, the .NET runtime and libtorch. " +
                        "**RSS at training start** is VmRSS at that reset (after a full GC); **training increment** is the difference: " +
                        "what training adds on top of what was already resident.")
            .AppendLine("- **read** keeps the frozen backbone resident while training (what ReadFineTuner does in the service); " +
                        "**read-freed** is the same job on the cache `read` built, with the backbone's weights disposed when the train stage " +
                        "starts (training reads only the activation cache), so its peak is what READ training needs without the backbone.")
            .AppendLine("- **CPU s** is process CPU time (all threads), not wall time: the machine was shared with other builds and tests, so wall " +
                        "times are noisy and only indicative. CPU s / step is the training loop's CPU over its steps (first step included). " +
                        "CPU s / job covers loading the checkpoint, READ's precompute, training and READ's evaluation, not checkpoint generation.")
            .AppendLine("- **Precompute tok/s** is READ's cache build (tokenise, backbone forward in batches of ≤ 4096 tokens, cache write) over " +
                        "train + validation tokens per wall second; **% of matmul** is its achieved FLOP rate (2 × non-embedding parameters per token " +
                        "+ 4·S·d per token per layer for attention, as Measurement/BackboneFlops.cs) over the float32 matmul rate measured in the same " +
                        "process just before (best of 1024² and 2048² square matmuls, Measurement/MatmulRate.cs). Both are wall-clock rates, so they " +
                        "share the noise.")
            .AppendLine("- Points estimated above the per-process limit " + $"({s.LimitGb:F0} GB: the machine has 24 GB, shared) are not run; the row says what they would need.")
            .AppendLine()
            .AppendLine(table.ToMarkdown())
            .AppendLine("## READ precompute").AppendLine()
            .AppendLine(precompute.ToMarkdown())
            .AppendLine("## Aims").AppendLine()
            .AppendLine(aims.ToMarkdown());
        return (md.ToString(), table.ToCsv());
    }

    private static string Machine()
    {
        string? model = null;
        double ramGb = double.NaN;
        try
        {
            model = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim();
            var total = File.ReadLines("/proc/meminfo").First(l => l.StartsWith("MemTotal:", StringComparison.Ordinal));
            ramGb = double.Parse(total.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024 / 1024;
        }
        catch (IOException)
        {
        }

        return $"{model ?? "unknown CPU"}, {Environment.ProcessorCount} cores, {ramGb:F1} GiB RAM, TorchSharp CPU (libtorch {TorchSharp.torch.__version__}), {TorchSharp.torch.get_num_threads()} torch threads";
    }
}
