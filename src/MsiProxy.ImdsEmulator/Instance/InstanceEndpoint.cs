using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using MsiProxy.ImdsEmulator.Protocol;

namespace MsiProxy.ImdsEmulator.Instance;

/// <summary>
/// GET /metadata/instance[/key/index/...]: walks into the document; format=json (default) or text, and leaves
/// (plain values) only as text, as IMDS requires.
/// </summary>
internal sealed class InstanceEndpoint(EmulatorState state, ImdsResponseHeaders headers)
{
    private const string Root = "/metadata/instance";

    private readonly JsonObject _document = InstanceDocument.Build(state.Options);

    public Task HandleAsync(HttpContext context, string path, ImdsQuery? query)
    {
        if (RequestChecks.MetadataCategoryProblem(context.Request, state.Options, query) is { } problem)
        {
            return Write(context, 400, problem);
        }

        var format = query!.Get("format") ?? "json";
        if (format is not ("json" or "text"))
        {
            return Write(context, 400, ImdsResponses.PlainError($"Bad request. Invalid format '{format}', use json or text"));
        }

        var node = Walk(path[Root.Length..]);
        if (node is null)
        {
            return Write(context, 404, ImdsResponses.NotFound);
        }

        if (format == "text")
        {
            return ImdsResponses.WriteAsync(context, headers, 200, AsText(node), ImdsResponses.TextContentType);
        }

        if (node is JsonValue)
        {
            return Write(context, 400, ImdsResponses.PlainError("Bad request. Leaf nodes require format=text"));
        }

        return Write(context, 200, node.ToJsonString(new JsonSerializerOptions { Encoder = ImdsResponses.WriterOptions.Encoder }));
    }

    private JsonNode? Walk(string rest)
    {
        JsonNode? node = _document;
        foreach (var segment in rest.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            node = node switch
            {
                JsonObject obj => obj.FirstOrDefault(p => string.Equals(p.Key, segment, StringComparison.OrdinalIgnoreCase)).Value,
                JsonArray array when int.TryParse(segment, out var i) && i >= 0 && i < array.Count => array[i],
                _ => null,
            };
            if (node is null)
            {
                return null;
            }
        }

        return node;
    }

    /// <summary>Text form: a leaf's value, or one child name per line ("name/" when it has children).</summary>
    private static string AsText(JsonNode node) => node switch
    {
        JsonObject obj => string.Join('\n', obj.Select(p => p.Value is JsonValue ? p.Key : p.Key + "/")),
        JsonArray array => string.Join('\n', array.Select((item, i) => item is JsonValue ? $"{i}" : $"{i}/")),
        _ => node.GetValue<string>(),
    };

    private Task Write(HttpContext context, int status, string body) => ImdsResponses.WriteAsync(context, headers, status, body);
}
