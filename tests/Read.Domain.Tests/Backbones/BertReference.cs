namespace Read.Domain.Tests.Backbones;

/// <summary>
/// Plain C# (double precision, no TorchSharp) BERT forward: embeddings, post-LN attention and feed-forward blocks,
/// erf GELU. The independent reference for the TorchSharp backbone.
/// </summary>
internal sealed class BertReference(IReadOnlyDictionary<string, (long[] Shape, float[] Data)> weights, int layers, int heads, double eps)
{
    private double[] W(string name) => weights[name].Data.Select(v => (double)v).ToArray();

    private long Rows(string name) => weights[name].Shape[0];

    /// <summary>Hidden states [layer 0..L][position][feature] for one example.</summary>
    public double[][][] Forward(long[] ids, long[] mask, long[] types)
    {
        var s = ids.Length;
        var d = (int)weights["embeddings.word_embeddings.weight"].Shape[1];
        var word = W("embeddings.word_embeddings.weight");
        var position = W("embeddings.position_embeddings.weight");
        var type = W("embeddings.token_type_embeddings.weight");
        var x = new double[s][];
        for (var t = 0; t < s; t++)
        {
            x[t] = new double[d];
            for (var j = 0; j < d; j++)
                x[t][j] = word[ids[t] * d + j] + position[t * d + j] + type[types[t] * d + j];
            x[t] = LayerNorm(x[t], "embeddings.LayerNorm");
        }

        var states = new List<double[][]> { x };
        for (var l = 0; l < layers; l++)
        {
            var p = $"encoder.layer.{l}";
            var q = x.Select(v => Linear(v, $"{p}.attention.self.query")).ToArray();
            var k = x.Select(v => Linear(v, $"{p}.attention.self.key")).ToArray();
            var v2 = x.Select(v => Linear(v, $"{p}.attention.self.value")).ToArray();
            var dh = d / heads;
            var context = new double[s][];
            for (var t = 0; t < s; t++)
            {
                context[t] = new double[d];
                for (var h = 0; h < heads; h++)
                {
                    var scores = new double[s];
                    var max = double.NegativeInfinity;
                    for (var u = 0; u < s; u++)
                    {
                        if (mask[u] == 0)
                        {
                            scores[u] = double.NegativeInfinity;
                            continue;
                        }

                        double dot = 0;
                        for (var j = 0; j < dh; j++)
                            dot += q[t][h * dh + j] * k[u][h * dh + j];
                        scores[u] = dot / Math.Sqrt(dh);
                        max = Math.Max(max, scores[u]);
                    }

                    var weightsSum = 0.0;
                    for (var u = 0; u < s; u++)
                    {
                        scores[u] = mask[u] == 0 ? 0 : Math.Exp(scores[u] - max);
                        weightsSum += scores[u];
                    }

                    for (var u = 0; u < s; u++)
                        for (var j = 0; j < dh; j++)
                            context[t][h * dh + j] += scores[u] / weightsSum * v2[u][h * dh + j];
                }
            }

            var attended = new double[s][];
            var output = new double[s][];
            for (var t = 0; t < s; t++)
            {
                attended[t] = LayerNorm(Add(Linear(context[t], $"{p}.attention.output.dense"), x[t]), $"{p}.attention.output.LayerNorm");
                var inner = Linear(attended[t], $"{p}.intermediate.dense").Select(Gelu).ToArray();
                output[t] = LayerNorm(Add(Linear(inner, $"{p}.output.dense"), attended[t]), $"{p}.output.LayerNorm");
            }

            x = output;
            states.Add(x);
        }

        return states.ToArray();
    }

    private double[] Linear(double[] input, string prefix)
    {
        var weight = W(prefix + ".weight");
        var bias = W(prefix + ".bias");
        var outputs = (int)Rows(prefix + ".weight");
        var result = new double[outputs];
        for (var o = 0; o < outputs; o++)
        {
            var sum = bias[o];
            for (var i = 0; i < input.Length; i++)
                sum += weight[o * input.Length + i] * input[i];
            result[o] = sum;
        }

        return result;
    }

    private double[] LayerNorm(double[] v, string prefix)
    {
        var gamma = W(prefix + ".weight");
        var beta = W(prefix + ".bias");
        var mean = v.Average();
        var variance = v.Select(a => (a - mean) * (a - mean)).Average();
        return v.Select((a, i) => (a - mean) / Math.Sqrt(variance + eps) * gamma[i] + beta[i]).ToArray();
    }

    private static double[] Add(double[] a, double[] b) => a.Select((v, i) => v + b[i]).ToArray();

    private static double Gelu(double x) => 0.5 * x * (1 + Erf(x / Math.Sqrt(2)));

    /// <summary>erf via its Taylor series (|x| &lt; 3) or the continued fraction of erfc; accurate to ~1e-12 here.</summary>
    internal static double Erf(double x)
    {
        var ax = Math.Abs(x);
        double result;
        if (ax < 3)
        {
            double sum = 0, term = ax;
            for (var n = 0; n < 200; n++)
            {
                sum += term / (2 * n + 1);
                term *= -ax * ax / (n + 1);
                if (Math.Abs(term) < 1e-17)
                    break;
            }

            result = 2 / Math.Sqrt(Math.PI) * sum;
        }
        else
        {
            // erfc(x) = exp(-x²)/√π · 1/(x + 1/2/(x + 1/(x + 3/2/(x + ...))))
            var f = ax;
            for (var n = 60; n >= 1; n--)
                f = ax + n / 2.0 / f;
            result = 1 - Math.Exp(-ax * ax) / Math.Sqrt(Math.PI) / f;
        }

        return x < 0 ? -result : result;
    }
}
