using System.CommandLine;
using Read.Cli;

var root = new RootCommand("Read command-line tools: datasets and backbone import (benchmarks: bench/Read.Bench).")
{
    DatasetsCommand.Create(),
    BackbonesCommand.Create(),
};
return await root.Parse(args).InvokeAsync();
