using System.CommandLine;
using Read.Cli;

var root = new RootCommand("Read command-line tools: datasets and backbone import.")
{
    DatasetsCommand.Create(),
};
return await root.Parse(args).InvokeAsync();
