using System.Text.Json;
using MsiProxy.ImdsEmulator.Control;

namespace MsiProxy.ImdsEmulator;

/// <summary>
/// The fault file / control API format: a JSON FaultRule object or an array of them, camelCase or PascalCase,
/// TimeSpans as "hh:mm:ss[.fff]" strings.
/// </summary>
public static class FaultFile
{
    public static async Task<IReadOnlyList<FaultRule>> ReadAsync(Stream json, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(json);
        using var document = await JsonDocument.ParseAsync(json, cancellationToken: ct).ConfigureAwait(false);
        return document.RootElement.ValueKind switch
        {
            JsonValueKind.Array => document.RootElement.Deserialize<List<FaultRule>>(ControlEndpoints.Json) ?? [],
            JsonValueKind.Object => [document.RootElement.Deserialize<FaultRule>(ControlEndpoints.Json)!],
            _ => throw new JsonException("Expected a fault rule object or an array of them."),
        };
    }

    /// <summary>Validates every rule first so a bad one leaves the script untouched.</summary>
    public static void EnqueueAll(FaultScript script, IReadOnlyList<FaultRule> rules)
    {
        ArgumentNullException.ThrowIfNull(script);
        ArgumentNullException.ThrowIfNull(rules);
        foreach (var rule in rules)
        {
            FaultScript.Validate(rule);
        }

        foreach (var rule in rules)
        {
            script.Enqueue(rule);
        }
    }
}
