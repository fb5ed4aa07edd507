using System.Text.Json;
using System.Text.Json.Nodes;
using MsiProxy.Requests;
using MsiProxy.Responses;

namespace MsiProxy.Forwarding;

/// <summary>
/// User data is opt-in per client, but IMDS also puts it inside the instance document (<c>compute.userData</c>). For a
/// client without access it is taken out of <c>/metadata/instance</c> and <c>/metadata/instance/compute</c>, so no path
/// reads what the endpoint table denies. A document that cannot be read is refused rather than passed on.
/// </summary>
internal static class UserDataFilter
{
    public static bool Applies(ImdsRequest request) =>
        request.Endpoint == ImdsEndpoints.Instance && request.Query["format"] is not "text"
        && (request.Path.Equals(ImdsEndpoints.Instance.Path, StringComparison.OrdinalIgnoreCase)
            || request.Path.Equals(ImdsEndpoints.Instance.Path + "/compute", StringComparison.OrdinalIgnoreCase));

    public static BodyAnswer Remove(ImdsRequest request, BodyAnswer answer)
    {
        JsonObject? document;
        try
        {
            document = JsonNode.Parse(answer.Body.Span) as JsonObject;
        }
        catch (JsonException)
        {
            document = null;
        }

        if (document is null)
        {
            return BodyAnswer.Error(StatusCodes.Status502BadGateway, "bad_gateway", "The upstream's instance document could not be read");
        }

        var compute = request.Path.Length == ImdsEndpoints.Instance.Path.Length ? FindKey(document, "compute") as JsonObject : document;
        if (compute is null || FindKeyName(compute, "userData") is not { } key)
        {
            return answer;
        }

        compute.Remove(key);
        var body = new System.Buffers.ArrayBufferWriter<byte>(answer.Body.Length);
        using (var json = new Utf8JsonWriter(body))
        {
            document.WriteTo(json);
        }

        return answer with { Body = body.WrittenMemory };
    }

    private static JsonNode? FindKey(JsonObject node, string name) => FindKeyName(node, name) is { } key ? node[key] : null;

    // IMDS matches keys without regard to case; so must a filter.
    private static string? FindKeyName(JsonObject node, string name) =>
        node.Select(p => p.Key).FirstOrDefault(k => k.Equals(name, StringComparison.OrdinalIgnoreCase));
}
