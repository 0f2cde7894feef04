using System.CommandLine;
using Read.Cli;

var root = new RootCommand("Read command-line tools: datasets, backbone import and benchmarks.")
{
    DatasetsCommand.Create(),
    BackbonesCommand.Create(),
    BenchCommand.Create(),
};
return await root.Parse(args).InvokeAsync();
