using TorchSharp;
using static TorchSharp.torch;

namespace Read.Bench.Quality;

/// <summary>
/// The trivial baseline READ must beat: logistic regression on frozen mean-pooled features, full-batch AdamW, the epoch
/// with the best validation accuracy kept.
/// </summary>
internal static class LinearProbe
{
    public sealed record Result(long[] TestPredictions, double ValidationAccuracy, int BestEpoch, long TrainableParameters, double TrainSeconds);

    public static Result Fit(Tensor trainX, long[] trainY, Tensor validationX, long[] validationY, Tensor testX, int classes,
        int epochs = 300, double learningRate = 1e-2, double weightDecay = 1e-4, int seed = 0)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        manual_seed(seed);
        using var head = nn.Linear(trainX.shape[1], classes);
        using var optimizer = optim.AdamW(head.parameters(), learningRate, weight_decay: weightDecay);
        using var y = tensor(trainY);
        using var validationTargets = tensor(validationY);
        var best = (Accuracy: -1.0, Epoch: 0, State: new Dictionary<string, Tensor>());
        for (var epoch = 1; epoch <= epochs; epoch++)
        {
            using var scope = NewDisposeScope();
            head.train();
            var loss = nn.functional.cross_entropy(head.call(trainX), y);
            optimizer.zero_grad();
            loss.backward();
            optimizer.step();
            head.eval();
            using var noGrad = no_grad();
            var accuracy = head.call(validationX).argmax(-1).eq(validationTargets).to_type(ScalarType.Float64).mean().item<double>();
            if (accuracy > best.Accuracy)
            {
                foreach (var t in best.State.Values)
                    t.Dispose();
                best = (accuracy, epoch, head.state_dict().ToDictionary(p => p.Key, p => p.Value.detach().clone().MoveToOuterDisposeScope()));
            }
        }
        head.load_state_dict(best.State);
        using var noGradTest = no_grad();
        using var predictions = head.call(testX).argmax(-1);
        var parameters = head.parameters().Sum(p => p.numel());
        foreach (var t in best.State.Values)
            t.Dispose();
        return new Result(predictions.data<long>().ToArray(), best.Accuracy, best.Epoch, parameters, clock.Elapsed.TotalSeconds);
    }
}
