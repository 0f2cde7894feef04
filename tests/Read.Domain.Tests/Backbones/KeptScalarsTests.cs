using System.Reflection;
using System.Reflection.Emit;
using Read.Domain.Backbones;
using Read.Domain.Backbones.Bert;
using Read.Domain.FineTuning;
using Read.Domain.SideNetwork;
using TorchSharp;
using static TorchSharp.torch;

namespace Read.Domain.Tests.Backbones;

/// <summary>
/// TorchSharp's implicit Scalars can be finalized while libtorch still reads them (see <see cref="KeptScalars"/>): a
/// predict under load answered 500 with "Expected false to be true" in BertModel.MaskBias.
/// </summary>
[Collection(FinalizerStormCollection.Name)]
public sealed class KeptScalarsTests
{
    [Fact]
    public void ForwardAndHead_WhileTheGarbageCollectorFinalizesConstantly_NeverReadAFreedScalar()
    {
        // A thread collecting and finalizing without pause stands in for a loaded API, whose allocations start collections
        // on any thread at any time. Before KeptScalars this failed within a few seconds ("Expected false to be true", in MaskBias).
        using var temp = new TempDirectory();
        TinyBertCheckpoint.Write(temp.Path, BertConfig.Tiny(vocabSize: 1, layers: 2, hiddenSize: 32, heads: 4, intermediateSize: 64, maxPositions: 64), seed: 7);
        using var backbone = HuggingFaceCheckpoint.Load("t", temp.Path);
        manual_seed(3);
        using var classifier = new ReadClassifier(new ReadSideNetwork(32, 8, zeroInitOutput: false), 32, 3, Pooling.Mean);
        classifier.eval();
        string[] texts = ["a great movie", "bad, really bad! the ending was awful and too long", "fine", "not for me, and not for anyone I know"];
        float[] Predict()
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            using var batch = backbone.Encode(texts, null, 64);
            var hidden = backbone.HiddenStates(batch);
            var (states, segments) = HiddenStateGather.Gather(hidden, batch.AttentionMask, [1, 2], Pooling.Mean);
            return classifier.Forward(states, segments, texts.Length).data<float>().ToArray();
        }

        var expected = Predict();
        using var stop = new CancellationTokenSource();
        var collector = new Thread(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
            }
        }) { IsBackground = true };
        collector.Start();
        try
        {
            // 300 forwards: in 2 of 2 runs before KeptScalars, this failed within the first 8 seconds (about 150 forwards).
            for (var run = 0; run < 300; run++)
                Assert.Equal(expected, Predict()); // bit-identical: a reused Scalar could also be read as another number
        }
        finally
        {
            stop.Cancel();
            collector.Join();
        }
    }

    [Fact]
    public void TrainingSteps_WhileTheGarbageCollectorFinalizesConstantly_EndWithTheSameWeights()
    {
        // The trainer's own path: side network forward, loss, backward, clipping and AdamWSchedule's step under the same
        // finalizer storm, against the same steps run calmly. With TorchSharp's AdamW (before decision 018) this failed.
        float[] Train()
        {
            manual_seed(11);
            using var classifier = new ReadClassifier(new ReadSideNetwork(32, 8, zeroInitOutput: false), 32, 3, Pooling.Mean);
            using var optimizer = new AdamWSchedule(classifier.parameters(), 0.01, 0.01, 0.1, 1.0, 300);
            var generator = new Random(5);
            for (var step = 0; step < 300; step++)
            {
                using var scope = NewDisposeScope();
                var states = randn(12, 3, 32);
                var segments = tensor(Enumerable.Range(0, 12).Select(i => (long)(i / 3)).ToArray());
                var labels = tensor(Enumerable.Range(0, 4).Select(_ => (long)generator.Next(3)).ToArray());
                optimizer.Step(nn.functional.cross_entropy(classifier.Forward(states, segments, 4), labels));
            }

            using var flat = cat(classifier.parameters().Select(p => p.detach().flatten()).ToArray());
            return flat.data<float>().ToArray();
        }

        var calm = Train();
        using var stop = new CancellationTokenSource();
        var collector = new Thread(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
            }
        }) { IsBackground = true };
        collector.Start();
        try
        {
            for (var run = 0; run < 3; run++)
                Assert.Equal(calm, Train()); // with TorchSharp's AdamW: "Unknown scalar type" in its step, 2 of 2 runs
        }
        finally
        {
            stop.Cancel();
            collector.Join();
        }
    }

    [Fact]
    public void ReadDomain_CallsNoTorchSharpMemberThatLeavesAScalarToTheFinalizer()
    {
        var torchSharp = typeof(Scalar).Assembly;
        // TorchSharp members that make a Scalar (directly or through other TorchSharp members) and do not keep it: a + b,
        // add(tensor) with its alpha of 1, x * 0.5, arange(n), square(), and every implicit number-to-Scalar conversion.
        var torchMethods = MethodsOf(torchSharp).Select(m => (Method: Key(m), Calls: Calls(m))).ToList();
        var dropping = torchMethods.Where(m => m.Calls.Any(MakesScalar)).Select(m => m.Method).ToHashSet();
        for (var grew = true; grew;)
        {
            grew = false;
            foreach (var (method, calls) in torchMethods)
            {
                if (!dropping.Contains(method) && calls.Any(c => dropping.Contains(Key(c))))
                    grew |= dropping.Add(method);
            }
        }

        var offenders = new List<string>();
        foreach (var method in MethodsOf(typeof(KeptScalars).Assembly).Concat(MethodsOf(typeof(global::Read.Research.Baselines.BaselineTrainer).Assembly)))
        {
            var inKeptScalars = method.DeclaringType == typeof(KeptScalars);
            foreach (var call in Calls(method))
            {
                // KeptScalars disposes each Scalar it makes after the op (or roots it); nothing else may make one.
                var makes = MakesScalar(call) && !(inKeptScalars && call.DeclaringType == typeof(ScalarExtensionMethods));
                if (makes || dropping.Contains(Key(call)))
                    offenders.Add($"{method.DeclaringType?.FullName}.{method.Name} calls {call.DeclaringType?.Name}.{call}");
            }
        }

        Assert.True(dropping.Count > 50, $"the scan found only {dropping.Count} TorchSharp members that make Scalars: is it reading IL?");
        Assert.True(offenders.Count == 0, "Use KeptScalars instead:\n" + string.Join("\n", offenders.Distinct()));
    }

    /// <summary>One key for a method and every generic instantiation of it.</summary>
    private static (Module, int) Key(MethodBase method) => (method.Module, method.MetadataToken);

    private static bool MakesScalar(MethodBase method) =>
        (method.DeclaringType == typeof(Scalar) && method.Name == "op_Implicit") || method.DeclaringType == typeof(ScalarExtensionMethods);

    private static IEnumerable<MethodBase> MethodsOf(Assembly assembly)
    {
        const BindingFlags all = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
        return assembly.GetTypes().SelectMany(t => t.GetMethods(all).Cast<MethodBase>().Concat(t.GetConstructors(all)));
    }

    private static readonly Dictionary<short, OpCode> OpCodesByValue = typeof(OpCodes).GetFields(BindingFlags.Public | BindingFlags.Static)
        .Select(f => (OpCode)f.GetValue(null)!).ToDictionary(o => o.Value);

    /// <summary>The methods and constructors <paramref name="method"/>'s IL calls (lambdas and iterators are methods of their own).</summary>
    private static List<MethodBase> Calls(MethodBase method)
    {
        var calls = new List<MethodBase>();
        var il = method.GetMethodBody()?.GetILAsByteArray();
        if (il is null)
            return calls;
        var typeArguments = method.DeclaringType is { IsGenericType: true } type ? type.GetGenericArguments() : null;
        var methodArguments = method.IsGenericMethod ? method.GetGenericArguments() : null;
        for (var i = 0; i < il.Length;)
        {
            short value = il[i++];
            if (value == 0xFE)
                value = (short)(0xFE00 | il[i++]);
            var code = OpCodesByValue[value];
            if (code.OperandType == OperandType.InlineMethod)
            {
                try
                {
                    if (method.Module.ResolveMethod(BitConverter.ToInt32(il, i), typeArguments, methodArguments) is { } target)
                        calls.Add(target);
                }
                catch (ArgumentException)
                {
                    // A member of a generic instantiation the context cannot resolve: not a TorchSharp tensor call.
                }
            }

            i += code.OperandType switch
            {
                OperandType.InlineNone => 0,
                OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar => 1,
                OperandType.InlineVar => 2,
                OperandType.InlineI8 or OperandType.InlineR => 8,
                OperandType.InlineSwitch => 4 + 4 * BitConverter.ToInt32(il, i),
                _ => 4,
            };
        }

        return calls;
    }
}

/// <summary>
/// Alone: the finalizer storm of <see cref="KeptScalarsTests"/> slows the whole process, and every other test would run in it.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class FinalizerStormCollection
{
    public const string Name = "finalizer storm";
}
