using System.Net;
using System.Text.Json;
using MsiProxy.ImdsEmulator;
using MsiProxy.Testing.Emulator;
using MsiProxy.Testing.Proxy;

namespace MsiProxy.Tests.Tokens;

/// <summary>Helpers the integration tests of the cache, bindings, admin API and failover share.</summary>
public static class ProxyCalls
{
    public const string Arm = "https://management.azure.com/";

    /// <summary>
    /// <see cref="ProxyHost.Settings"/> with a probe timeout that survives a busy 2-core machine: a 1 s probe timeout
    /// lets two slow probes in a row mark the only upstream unhealthy while other tests load the CPU.
    /// </summary>
    public static Dictionary<string, string?> Settings(ImdsEmulatorServer emulator, params (string Name, string Address, string[] Identities)[] clients)
    {
        var settings = ProxyHost.Settings(emulator.BaseAddress, clients);
        settings["MsiProxy:Health:Timeout"] = "00:00:05";
        return settings;
    }

    public sealed record Answer(HttpStatusCode Status, string Body, string? RetryAfter)
    {
        public JsonElement Json => JsonDocument.Parse(Body).RootElement.Clone();

        public string? AccessToken => Status == HttpStatusCode.OK ? Json.GetProperty("access_token").GetString() : null;
    }

    public static async Task<Answer> TokenAsync(HttpClient client, string resource = Arm, string? extraQuery = null)
    {
        using var request = ImdsRequests.Token(resource, extraQuery);
        using var response = await client.SendAsync(request);
        return new Answer(response.StatusCode, await response.Content.ReadAsStringAsync(), response.Headers.RetryAfter?.ToString());
    }

    /// <summary>Token requests the emulator received (health probes and other paths excluded), oldest first.</summary>
    public static IReadOnlyList<RequestRecord> TokenRequests(ImdsEmulatorServer emulator) =>
        [.. emulator.State.Requests.Where(r => r.Path.StartsWith(ImdsRequests.TokenPath, StringComparison.OrdinalIgnoreCase)).OrderBy(r => r.Sequence)];

    public static EmulatorOptions WithUserAssigned(int count)
    {
        var options = new EmulatorOptions();
        for (var i = 0; i < count; i++)
        {
            options.UserAssigned.Add(UserAssigned(i));
        }

        return options;
    }

    public static UserAssignedIdentity UserAssigned(int i) => new(
        $"{i + 1:x8}-aaaa-4aaa-8aaa-00000000000{i % 10}",
        $"{i + 1:x8}-bbbb-4bbb-8bbb-00000000000{i % 10}",
        $"/subscriptions/8d10da13-8125-4ba9-a717-bf7490507b3d/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id{i}");
}
