using System.CommandLine;
using Read.Bench.Comparison;
using Read.Bench.Methods;
using Read.Bench.Quality;
using Read.Bench.Speed;

var root = new RootCommand("Read benchmarks: each prints a table and writes markdown + CSV under docs/benchmarks.")
{
    BackboneSpeedCommand.Create(),
    CheckpointLoadCommand.Create(),
    SideNetworkProfileCommand.Create(),
    ReadQualityCommand.Create(),
    MethodCommand.Create(),
    CompareCommand.Create(),
    ScalingCommand.Create(),
    Read.Bench.Decoders.DecodersCommand.Create(),
    Read.Bench.Streamed.StreamedPrecomputeCommand.Create(),
    Read.Bench.Precision.PrecisionCommand.Create(),
    Read.Bench.Devices.GpuCheckCommand.Create(),
    Read.Bench.Load.LoadTestCommand.Create(),
    Read.Bench.Load.SharedForwardCommand.Create(),
    Read.Bench.Load.FairnessCommand.Create(),
};
return await root.Parse(args).InvokeAsync();
