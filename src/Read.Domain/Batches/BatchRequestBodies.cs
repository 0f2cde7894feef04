using System.Text.Json;
using System.Text.Json.Serialization;
using Read.Domain.Configuration;

namespace Read.Domain.Batches;

// The online endpoints' bodies and answers (Read.Api's PredictRequest and friends), mirrored here because the worker
// runs batches without the API: same JSON names, same strictness, same validation codes and messages.

internal sealed record BatchPredictBody(IReadOnlyList<BatchPredictInput?>? Inputs, int? TopK = null);

internal sealed record BatchPredictInput(string? Adapter, string? Text, string? TextPair);

internal sealed record BatchAdapterPredictBody(IReadOnlyList<BatchAdapterPredictInput?>? Inputs, int? TopK = null);

internal sealed record BatchAdapterPredictInput(string? Text, string? TextPair);

internal sealed record BatchAdapterPredictResponse(string AdapterId, IReadOnlyList<BatchPredictionResponse> Predictions);

internal sealed record BatchPredictionResponse(string Label, IReadOnlyDictionary<string, double>? Probabilities, double? Value);

internal sealed record BatchMixedPredictResponse(IReadOnlyList<BatchMixedPredictionResponse> Predictions);

internal sealed record BatchMixedPredictionResponse(string Adapter, string Label, IReadOnlyDictionary<string, double>? Probabilities, double? Value);

/// <summary>The ProblemDetails body an online request would have got, with its stable code.</summary>
internal sealed class BatchProblem
{
    public required string Type { get; init; }
    public required string Title { get; init; }
    public required int Status { get; init; }
    public required string Detail { get; init; }

    [JsonExtensionData]
    public Dictionary<string, object?> Extensions { get; init; } = new();

    public static BatchProblem Of(int status, string code, string title, string detail, int? index = null)
    {
        var problem = new BatchProblem { Type = TypeOf(status), Title = title, Status = status, Detail = detail };
        problem.Extensions["code"] = code;
        if (index is { } i)
            problem.Extensions["index"] = i;
        return problem;
    }

    public static BatchProblem BadRequest(string code, string detail, int? index = null) => Of(400, code, "Bad request", detail, index);

    public static BatchProblem NotFound(string detail, int? index = null) => Of(404, "not_found", "Not found", detail, index);

    // What ASP.NET Core's ProblemDetails defaults put in "type" for these statuses.
    private static string TypeOf(int status) => status switch
    {
        400 => "https://tools.ietf.org/html/rfc9110#section-15.5.1",
        404 => "https://tools.ietf.org/html/rfc9110#section-15.5.5",
        422 => "https://tools.ietf.org/html/rfc4918#section-11.2",
        _ => "https://tools.ietf.org/html/rfc9110#section-15.6.1",
    };

    public string Code => (string)Extensions["code"]!;
}

/// <summary>Parsing and validating one request body as the online endpoint would.</summary>
internal static class BatchRequestBodies
{
    /// <summary>The API's request JSON options: snake_case, unknown members and quoted numbers refused.</summary>
    public static readonly JsonSerializerOptions Strict = new(JsonDefaults.SnakeCase)
    {
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        NumberHandling = JsonNumberHandling.Strict,
    };

    /// <summary>One input to run: which adapter, its text, the input's position in its request.</summary>
    public sealed record Input(string AdapterId, string Text, string? TextPair);

    /// <summary>The inputs and top_k of a valid body, or the problem an online request would have answered.</summary>
    public static (IReadOnlyList<Input>? Inputs, int TopK, BatchProblem? Problem) Read(BatchInputFile.Line line, int maxInputs, int maxChars, int defaultTopK, int maxTopK)
    {
        List<(string? Adapter, string? Text, string? Pair)?> inputs;
        int? topK;
        try
        {
            if (line.AdapterId is null)
            {
                var body = line.Body.Deserialize<BatchPredictBody>(Strict)!;
                inputs = (body.Inputs ?? []).Select(i => i is null ? ((string?, string?, string?)?)null : (i.Adapter, i.Text, i.TextPair)).ToList();
                topK = body.TopK;
            }
            else
            {
                var body = line.Body.Deserialize<BatchAdapterPredictBody>(Strict)!;
                inputs = (body.Inputs ?? []).Select(i => i is null ? ((string?, string?, string?)?)null : (line.AdapterId, i.Text, i.TextPair)).ToList();
                topK = body.TopK;
            }
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or NotSupportedException)
        {
            return (null, 0, BatchProblem.BadRequest("invalid_request", e.Message));
        }

        if (inputs.Count == 0)
            return (null, 0, BatchProblem.BadRequest("missing_inputs", "'inputs' must hold at least one {\"text\": ...} object."));
        if (inputs.Count > maxInputs)
            return (null, 0, BatchProblem.BadRequest("too_many_inputs", $"At most {maxInputs} inputs per request (Read:MaxPredictBatch)."));
        if (topK is { } k && (k < 1 || k > maxTopK))
            return (null, 0, BatchProblem.BadRequest("invalid_top_k", $"top_k must be between 1 and {maxTopK}."));
        for (var i = 0; i < inputs.Count; i++)
        {
            if (inputs[i] is not { Text: { } text } item || string.IsNullOrWhiteSpace(text))
                return (null, 0, BatchProblem.BadRequest("missing_text", $"inputs[{i}].text must be a non-empty string.", i));
            if (text.Length > maxChars || item.Pair?.Length > maxChars)
                return (null, 0, BatchProblem.BadRequest("text_too_long",
                    $"inputs[{i}]: text and text_pair are limited to {maxChars} characters each (Read:MaxPredictTextChars).", i));
        }

        for (var i = 0; i < inputs.Count; i++)
        {
            if (string.IsNullOrWhiteSpace(inputs[i]!.Value.Adapter))
                return (null, 0, BatchProblem.BadRequest("missing_adapter", $"inputs[{i}].adapter must name one of your adapters.", i));
        }

        return (inputs.Select(i => new Input(i!.Value.Adapter!, i.Value.Text!, i.Value.Pair)).ToList(), topK ?? defaultTopK, null);
    }
}
