using System.Globalization;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Read.Api.Problems;
using Read.Domain.Backbones;
using Read.Domain.Batches;
using Read.Domain.Jobs;
using Read.Domain.Persistence;

namespace Read.Api.FineTuning;

/// <summary>
/// The checks every way of creating jobs makes on what they train (backbone, task and files), so a sweep's trials are
/// refused up front for exactly what would refuse a job, instead of failing one by one on a worker.
/// </summary>
internal static class TrainingInputs
{
    /// <summary>Null when a job on these inputs may be created, else the 400 that says why not.</summary>
    public static async Task<ProblemHttpResult?> ProblemAsync(
        ReadDbContext db, BackboneRegistry backbones, Guid tenant, string? backbone, string task, string? trainingFile, string? validationFile,
        CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(backbone))
            return ApiProblems.BadRequest("missing_backbone", "'backbone' is required; GET /v1/backbones lists them.");
        if (!backbones.Contains(backbone))
            return ApiProblems.BadRequest("unknown_backbone", $"Backbone '{backbone}' does not exist; GET /v1/backbones lists them.");
        if (!FineTuneTasks.IsKnown(task))
            return ApiProblems.BadRequest("invalid_task", $"task must be '{FineTuneTasks.Classification}' or '{FineTuneTasks.Regression}'.");
        if (string.IsNullOrWhiteSpace(trainingFile))
            return ApiProblems.BadRequest("missing_training_file", "'training_file' is required.");
        foreach (var fileId in new[] { trainingFile, validationFile }.OfType<string>())
        {
            var file = await db.Files.Where(f => f.Id == fileId && f.TenantId == tenant).Select(f => new { f.Labels, f.Purpose }).SingleOrDefaultAsync(ct);
            if (file is null)
                return ApiProblems.BadRequest("file_not_found", $"File '{fileId}' does not exist.");
            if (file.Purpose is BatchFileStore.InputPurpose or BatchFileStore.OutputPurpose)
                return ApiProblems.BadRequest("invalid_file_purpose", $"File '{fileId}' has purpose '{file.Purpose}': it holds predict requests or results, not labelled examples.");
            if (task == FineTuneTasks.Regression && file.Labels.FirstOrDefault(l => !double.TryParse(l, NumberStyles.Float, CultureInfo.InvariantCulture, out _)) is { } bad)
                return ApiProblems.BadRequest("invalid_regression_label", $"File '{fileId}' has the non-numeric label '{bad}'; regression needs numbers.");
        }
        return null;
    }
}
