using Read.Api.Hosting;

var builder = WebApplication.CreateBuilder(args);
builder.AddReadApi();

var app = builder.Build();
app.UseReadApi();
await app.PrepareAsync();
await app.RunAsync();

/// <summary>Entry point; public so functional tests can host it.</summary>
public partial class Program;
