using System.Security.Claims;
using System.Text;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Net.Http.Headers;
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

    /// <summary>
    /// Reads the multipart body section by section (never buffering the form): the file section streams into
    /// <see cref="FileContentStore"/> while it is counted (413 the moment it passes the limit), hashed and validated line
    /// by line; a refused upload keeps nothing.
    /// </summary>
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
        if (!MediaTypeHeaderValue.TryParse(request.ContentType, out var mediaType)
            || !mediaType.MediaType.Equals("multipart/form-data", StringComparison.OrdinalIgnoreCase))
        {
            return request.HasFormContentType
                ? ApiProblems.BadRequest("missing_file", "The form has no field named 'file'.")
                : ApiProblems.Problem(StatusCodes.Status415UnsupportedMediaType, "unsupported_media_type", "Unsupported media type",
                    "Send the dataset as multipart/form-data with a field named 'file'.");
        }
        var boundary = HeaderUtilities.RemoveQuotes(mediaType.Boundary).Value;
        if (string.IsNullOrEmpty(boundary))
            return ApiProblems.BadRequest("invalid_multipart", "The multipart/form-data content type has no boundary.");
        var (idempotencyKey, keyProblem) = IdempotencyKeys.Read(request);
        if (keyProblem is not null)
            return keyProblem;

        var tenant = user.GetTenantId();
        var fileId = "file-" + Guid.NewGuid().ToString("N");
        var kept = false;
        FileWriteResult? written = null;
        try
        {
            string? fileName = null;
            string? purpose = null;
            DatasetParseResult? parsed = null;
            var reader = new MultipartReader(boundary, request.Body);
            MultipartSection? section;
            while ((section = await reader.ReadNextSectionAsync(ct)) is not null)
            {
                if (!ContentDispositionHeaderValue.TryParse(section.ContentDisposition, out var disposition))
                    continue;
                var name = HeaderUtilities.RemoveQuotes(disposition.Name).Value;
                if (name == "file" && disposition.IsFileDisposition() && written is null)
                {
                    fileName = HeaderUtilities.RemoveQuotes(disposition.FileNameStar.HasValue ? disposition.FileNameStar : disposition.FileName).Value ?? "";
                    if (!StorableText.IsValid(fileName))
                        return ApiProblems.BadRequest("invalid_characters", "The file name contains a NUL character or an unpaired surrogate.");
                    // A batch input file holds predict requests, not labelled examples: checked once stored (below). When
                    // the purpose field comes after the file, the dataset check runs and its verdict is dropped for a batch.
                    var validator = purpose == BatchFileStore.InputPurpose ? null : new JsonlDatasetParser.Incremental(keepExamples: false);
                    var mayBeBatch = purpose is null; // not known yet: keep the bytes even past a dataset error
                    written = await FileContentStore.WriteAsync(db, fileId, section.Body, limit, ct,
                        validator is null ? null : piece => validator.Append(piece.Span) || mayBeBatch);
                    parsed = validator?.Complete() ?? DatasetParseResult.Ok([], []);
                }
                else if (name == "purpose")
                {
                    // A short field: read at most a little more than the longest valid value.
                    var buffer = new byte[64];
                    var n = await section.Body.ReadAtLeastAsync(buffer, buffer.Length, throwOnEndOfStream: false, ct);
                    purpose = Encoding.UTF8.GetString(buffer, 0, n);
                }
                // Any other section is skipped: the reader drains it without keeping it.
            }

            if (written is null || parsed is null)
                return ApiProblems.BadRequest("missing_file", "The form has no field named 'file'.");
            purpose ??= "fine-tune";
            if (purpose is not ("fine-tune" or "validation" or "test" or BatchFileStore.InputPurpose))
                return ApiProblems.BadRequest("invalid_purpose", "purpose must be fine-tune, validation, test or batch.");
            int? batchLines = null;
            if (purpose == BatchFileStore.InputPurpose)
            {
                // Bounded by the upload limit; read back from the store rather than kept while streaming.
                var batchInput = BatchInputFile.Parse(await FileContentStore.ReadAllAsync(db, fileId, ct), batchOptions.Value.MaxRequests);
                parsed = batchInput.Succeeded ? DatasetParseResult.Ok([], []) : DatasetParseResult.Fail(batchInput.ErrorCode!, batchInput.ErrorMessage!, batchInput.ErrorLine);
                batchLines = batchInput.Lines.Count;
            }
            if (!parsed.Succeeded)
            {
                var extra = parsed.ErrorLine is { } line ? new Dictionary<string, object?> { ["line"] = line } : null;
                return ApiProblems.BadRequest(parsed.ErrorCode!, parsed.ErrorMessage!, extra);
            }
            var requestHash = idempotencyKey is null ? "" : IdempotencyKeys.Hash(Convert.FromHexString(written.Sha256), Encoding.UTF8.GetBytes(fileName!), Encoding.UTF8.GetBytes(purpose));
            // A retry gets its first file back whatever the quota says now: that file is what uses the quota.
            if (idempotencyKey is not null && await ReplayAsync(db, tenant, idempotencyKey, requestHash, context, ct) is { } replay)
                return replay;
            if (await TenantQuotas.StorageExceededAsync(db, tenant, written.Bytes, quotas.Value, ct) is { } quota)
                return ApiProblems.Problem(StatusCodes.Status403Forbidden, "storage_quota_exceeded", "Forbidden",
                    $"This tenant may hold at most {quota} bytes of files; delete some first.");
            var entity = new DatasetFile
            {
                Id = fileId,
                TenantId = tenant,
                FileName = Path.GetFileName(fileName) is { Length: > 0 and <= 256 } shortName ? shortName : "dataset.jsonl",
                Purpose = purpose,
                Bytes = written.Bytes,
                Sha256 = written.Sha256,
                ExampleCount = batchLines ?? parsed.ExampleCount,
                Labels = [.. parsed.Labels],
                HasTextPairs = parsed.HasTextPairs,
                CreatedAt = DateTime.UtcNow,
            };
            db.Files.Add(entity);
            if (idempotencyKey is not null)
                IdempotencyKeys.Add(db, tenant, IdempotencyKeys.Files, idempotencyKey, requestHash, entity.Id);
            try
            {
                await db.SaveChangesAsync(ct);
                kept = true;
            }
            catch (DbUpdateException e) when (idempotencyKey is not null && IdempotencyKeys.IsDuplicate(e))
            {
                db.ChangeTracker.Clear(); // a concurrent retry under the same key committed first: answer with its file
                return await ReplayAsync(db, tenant, idempotencyKey, requestHash, context, ct) ?? throw new InvalidOperationException("Idempotency key vanished.", e);
            }

            return TypedResults.Created($"/v1/files/{entity.Id}", FileResponse.From(entity));
        }
        catch (FileTooLargeException)
        {
            return TooLarge(limit);
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return TooLarge(limit);
        }
        catch (InvalidDataException e) when (e.Message.Contains("limit", StringComparison.OrdinalIgnoreCase))
        {
            return TooLarge(limit);
        }
        catch (InvalidDataException e)
        {
            return ApiProblems.BadRequest("invalid_multipart", $"The multipart body is malformed ({e.Message}).");
        }
        finally
        {
            // Refused, replayed or failed: the streamed bytes go (WriteAsync already removed its own on its failures).
            if (!kept && written is not null)
                await FileContentStore.DeleteAsync(db, fileId, CancellationToken.None);
        }
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

    /// <summary>Streams the file's chunks to the client one at a time: a batch's output file has no size cap.</summary>
    internal static async Task<Results<FileStreamHttpResult, ProblemHttpResult>> Content(string id, ClaimsPrincipal user, ReadDbContext db, CancellationToken ct)
    {
        var tenant = user.GetTenantId();
        if (!await db.Files.AnyAsync(f => f.Id == id && f.TenantId == tenant, ct))
            return ApiProblems.NotFound("file", id);
        return TypedResults.Stream(await FileContentStore.OpenReadAsync(db, id, ct), "application/jsonl", $"{id}.jsonl");
    }

    private static ProblemHttpResult TooLarge(long limit) =>
        ApiProblems.Problem(StatusCodes.Status413PayloadTooLarge, "payload_too_large", "Payload too large",
            $"Dataset files are limited to {limit} bytes.");

    internal static async Task<Results<Ok<Page<FileResponse>>, ProblemHttpResult>> List(
        ClaimsPrincipal user, ReadDbContext db, int? limit, string? after, CancellationToken ct)
    {
        // The bytes live in file_chunks: a files row is metadata only, so whole rows are fetched.
        var (page, problem) = await PageRequest.NewestFirstAsync(db.Files, user.GetTenantId(), limit, after, ct);
        if (problem is not null)
            return problem;
        return TypedResults.Ok(new Page<FileResponse>(page!.Object, page.Data.Select(FileResponse.From).ToList(), page.HasMore));
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
                                                        && !BatchStatus.Terminal.Contains(b.Status), ct);
        if (inUse)
            return ApiProblems.Problem(StatusCodes.Status409Conflict, "file_in_use", "Conflict", $"File '{id}' is used by a queued or running job.");
        // The row and its chunks go together: a failure in between must not leave chunks that no file owns.
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        var deleted = await db.Files.Where(f => f.Id == id && f.TenantId == tenant).ExecuteDeleteAsync(ct);
        if (deleted > 0)
            await FileContentStore.DeleteAsync(db, id, ct);
        await tx.CommitAsync(ct);
        return deleted == 0 ? ApiProblems.NotFound("file", id) : TypedResults.NoContent();
    }
}
