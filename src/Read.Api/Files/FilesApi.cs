using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Read.Api.Authentication;
using Read.Api.Idempotency;
using Read.Api.Problems;
using Read.Domain.Batches;
using Read.Domain.Configuration;
using Read.Domain.Files;
using Read.Domain.Jobs;
using Read.Domain.Persistence;
using Read.Domain.Tenants;
using Read.Api.Paging;

namespace Read.Api.Files;

internal static class FilesApi
{

    // Multipart framing around the file; generous, the file itself is checked against the limit exactly.
    private const long MultipartOverheadBytes = 64 * 1024;

    public static IEndpointRouteBuilder MapFilesApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1/files").WithTags("Files").RequireAuthorization(AuthPolicies.Tenant);
        group.MapPost("/", Upload)
            .Accepts<IFormFile>("multipart/form-data")
            .WithSummary("Upload a JSONL dataset (form field 'file'; optional 'purpose'). Validated on upload; errors name the line.");
        group.MapGet("/", List).WithSummary("The calling tenant's files, newest first (limit, after).");
        group.MapGet("/{id}", Get).WithSummary("One file's metadata.");
        group.MapGet("/{id}/content", Content).WithSummary("A file's bytes (a batch's output and error files among them).");
        group.MapDelete("/{id}", Delete).WithSummary("Delete a file that no queued or running job uses.");
        return app;
    }

    internal static async Task<Results<Created<FileResponse>, ProblemHttpResult>> Upload(
        HttpContext context, ClaimsPrincipal user, ReadDbContext db, IOptions<ReadOptions> options, IOptions<QuotaOptions> quotas,
        IOptions<BatchOptions> batchOptions, CancellationToken ct)
    {
        var limit = options.Value.MaxUploadBytes;
        var request = context.Request;
        if (request.ContentLength > limit + MultipartOverheadBytes)
            return TooLarge(limit);
        var bodyLimit = context.Features.Get<IHttpMaxRequestBodySizeFeature>();
        if (bodyLimit is { IsReadOnly: false })
            bodyLimit.MaxRequestBodySize = limit + MultipartOverheadBytes;
        if (!request.HasFormContentType)
            return ApiProblems.Problem(StatusCodes.Status415UnsupportedMediaType, "unsupported_media_type", "Unsupported media type",
                "Send the dataset as multipart/form-data with a field named 'file'.");

        IFormCollection form;
        try
        {
            form = await request.ReadFormAsync(new FormOptions { MultipartBodyLengthLimit = limit + MultipartOverheadBytes }, ct);
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return TooLarge(limit);
        }
        catch (InvalidDataException e) when (e.Message.Contains("limit", StringComparison.OrdinalIgnoreCase))
        {
            return TooLarge(limit);
        }

        var file = form.Files.GetFile("file");
        if (file is null)
            return ApiProblems.BadRequest("missing_file", "The form has no field named 'file'.");
        if (file.Length > limit)
            return TooLarge(limit);
        if (!StorableText.IsValid(file.FileName))
            return ApiProblems.BadRequest("invalid_characters", "The file name contains a NUL character or an unpaired surrogate.");
        if (await TenantQuotas.StorageExceededAsync(db, user.GetTenantId(), file.Length, quotas.Value, ct) is { } quota)
            return ApiProblems.Problem(StatusCodes.Status403Forbidden, "storage_quota_exceeded", "Forbidden",
                $"This tenant may hold at most {quota} bytes of files; delete some first.");

        var content = new byte[file.Length];
        await using (var stream = file.OpenReadStream())
            await stream.ReadExactlyAsync(content, ct);
        var purpose = form["purpose"].FirstOrDefault() ?? "fine-tune";
        if (purpose is not ("fine-tune" or "validation" or "test" or BatchFileStore.InputPurpose))
            return ApiProblems.BadRequest("invalid_purpose", "purpose must be fine-tune, validation, test or batch.");
        // A batch input file holds predict requests, not labelled examples: validated as such, line by line.
        var batchInput = purpose == BatchFileStore.InputPurpose ? BatchInputFile.Parse(content, batchOptions.Value.MaxRequests) : null;
        var parsed = batchInput is null ? JsonlDatasetParser.Parse(content)
            : batchInput.Succeeded ? DatasetParseResult.Ok([], []) : DatasetParseResult.Fail(batchInput.ErrorCode!, batchInput.ErrorMessage!, batchInput.ErrorLine);
        if (!parsed.Succeeded)
        {
            var extra = parsed.ErrorLine is { } line ? new Dictionary<string, object?> { ["line"] = line } : null;
            return ApiProblems.BadRequest(parsed.ErrorCode!, parsed.ErrorMessage!, extra);
        }
        var tenant = user.GetTenantId();
        var (idempotencyKey, keyProblem) = IdempotencyKeys.Read(request);
        if (keyProblem is not null)
            return keyProblem;
        var requestHash = idempotencyKey is null ? "" : IdempotencyKeys.Hash(content, Encoding.UTF8.GetBytes(file.FileName), Encoding.UTF8.GetBytes(purpose));
        if (idempotencyKey is not null && await ReplayAsync(db, tenant, idempotencyKey, requestHash, context, ct) is { } replay)
            return replay;
        var entity = new DatasetFile
        {
            Id = "file-" + Guid.NewGuid().ToString("N"),
            TenantId = tenant,
            FileName = Path.GetFileName(file.FileName) is { Length: > 0 and <= 256 } name ? name : "dataset.jsonl",
            Purpose = purpose,
            Bytes = content.LongLength,
            Sha256 = Convert.ToHexStringLower(SHA256.HashData(content)),
            ExampleCount = batchInput?.Lines.Count ?? parsed.Examples.Count,
            Labels = [.. parsed.Labels],
            HasTextPairs = parsed.Examples.Any(e => e.TextPair is not null),
            Content = content,
            CreatedAt = DateTime.UtcNow,
        };
        db.Files.Add(entity);
        if (idempotencyKey is not null)
            IdempotencyKeys.Add(db, tenant, IdempotencyKeys.Files, idempotencyKey, requestHash, entity.Id);
        try
        {
            await db.SaveChangesAsync(ct);
        }
        catch (DbUpdateException e) when (idempotencyKey is not null && IdempotencyKeys.IsDuplicate(e))
        {
            db.ChangeTracker.Clear(); // a concurrent retry under the same key committed first: answer with its file
            return await ReplayAsync(db, tenant, idempotencyKey, requestHash, context, ct) ?? throw new InvalidOperationException("Idempotency key vanished.", e);
        }

        return TypedResults.Created($"/v1/files/{entity.Id}", FileResponse.From(entity));
    }

    private static async Task<Results<Created<FileResponse>, ProblemHttpResult>?> ReplayAsync(
        ReadDbContext db, Guid tenant, string key, string requestHash, HttpContext context, CancellationToken ct)
    {
        var (fileId, problem) = await IdempotencyKeys.FindAsync(db, tenant, IdempotencyKeys.Files, key, requestHash, ct);
        if (problem is not null)
            return problem;
        if (fileId is null)
            return null;
        if (await db.Files.AsNoTracking().SingleOrDefaultAsync(f => f.Id == fileId && f.TenantId == tenant, ct) is not { } file)
        {
            // Deleted since: the key is free again, and the retry creates a new file.
            await db.IdempotencyKeys.Where(k => k.TenantId == tenant && k.Scope == IdempotencyKeys.Files && k.Key == key).ExecuteDeleteAsync(ct);
            return null;
        }

        IdempotencyKeys.MarkReplayed(context.Response);
        return TypedResults.Created($"/v1/files/{file.Id}", FileResponse.From(file));
    }

    internal static async Task<Results<FileContentHttpResult, ProblemHttpResult>> Content(string id, ClaimsPrincipal user, ReadDbContext db, CancellationToken ct)
    {
        var content = await BatchFileStore.ReadAsync(db, user.GetTenantId(), id, ct);
        return content is null ? ApiProblems.NotFound("file", id) : TypedResults.File(content, "application/jsonl", $"{id}.jsonl");
    }

    private static ProblemHttpResult TooLarge(long limit) =>
        ApiProblems.Problem(StatusCodes.Status413PayloadTooLarge, "payload_too_large", "Payload too large",
            $"Dataset files are limited to {limit} bytes.");

    internal static async Task<Results<Ok<Page<FileResponse>>, ProblemHttpResult>> List(
        ClaimsPrincipal user, ReadDbContext db, int? limit, string? after, CancellationToken ct)
    {
        if (PageRequest.Validate(limit) is { } bad)
            return bad;
        var take = limit ?? PageRequest.DefaultLimit;
        var tenant = user.GetTenantId();
        var query = db.Files.AsNoTracking().Where(f => f.TenantId == tenant);
        if (after is not null)
        {
            var cursor = await query.Where(f => f.Id == after).Select(f => (DateTime?)f.CreatedAt).FirstOrDefaultAsync(ct);
            if (cursor is not { } c)
                return PageRequest.UnknownCursor(after);
            query = query.Where(f => f.CreatedAt < c || (f.CreatedAt == c && string.Compare(f.Id, after) < 0));
        }
        var files = await query
            .OrderByDescending(f => f.CreatedAt).ThenByDescending(f => f.Id).Take(take + 1)
            .Select(f => new DatasetFile
            {
                Id = f.Id, TenantId = f.TenantId, FileName = f.FileName, Purpose = f.Purpose, Bytes = f.Bytes, Sha256 = f.Sha256,
                ExampleCount = f.ExampleCount, Labels = f.Labels, HasTextPairs = f.HasTextPairs, Content = Array.Empty<byte>(), CreatedAt = f.CreatedAt,
            })
            .ToListAsync(ct);
        var page = PageRequest.From(files, take);
        return TypedResults.Ok(new Page<FileResponse>(page.Object, page.Data.Select(FileResponse.From).ToList(), page.HasMore));
    }

    internal static async Task<Results<Ok<FileResponse>, ProblemHttpResult>> Get(string id, ClaimsPrincipal user, ReadDbContext db, CancellationToken ct)
    {
        var tenant = user.GetTenantId();
        var file = await db.Files.AsNoTracking().SingleOrDefaultAsync(f => f.Id == id && f.TenantId == tenant, ct);
        return file is null ? ApiProblems.NotFound("file", id) : TypedResults.Ok(FileResponse.From(file));
    }

    internal static async Task<Results<NoContent, ProblemHttpResult>> Delete(string id, ClaimsPrincipal user, ReadDbContext db, CancellationToken ct)
    {
        var tenant = user.GetTenantId();
        var inUse = await db.Jobs.AnyAsync(j => j.TenantId == tenant && (j.TrainingFileId == id || j.ValidationFileId == id)
                                                && (j.Status == JobStatus.Queued || j.Status == JobStatus.Running), ct);
        inUse = inUse || await db.Batches.AnyAsync(b => b.TenantId == tenant && b.InputFileId == id
                                                        && b.Status != BatchStatus.Completed && b.Status != BatchStatus.Failed && b.Status != BatchStatus.Cancelled, ct);
        if (inUse)
            return ApiProblems.Problem(StatusCodes.Status409Conflict, "file_in_use", "Conflict", $"File '{id}' is used by a queued or running job.");
        var deleted = await db.Files.Where(f => f.Id == id && f.TenantId == tenant).ExecuteDeleteAsync(ct);
        return deleted == 0 ? ApiProblems.NotFound("file", id) : TypedResults.NoContent();
    }
}
