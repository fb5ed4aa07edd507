using MsiProxy.Caching;
using MsiProxy.ImdsEmulator;
using MsiProxy.Testing.Net;
using MsiProxy.Testing.Proxy;
using static MsiProxy.Tests.Tokens.ProxyCalls;

namespace MsiProxy.Tests.Requests;

/// <summary>
/// One emulator with two user-assigned identities (A and B) and one proxy in front of it, where the client at
/// 127.0.0.2 is bound to A alone: any token request for B, or for the VM's system-assigned identity, that reaches the
/// emulator is a breach of the boundary. Shared by the spelling and property tests, which send many requests.
/// </summary>
public sealed class BoundaryFixture : IAsyncLifetime
{
    public const string Caller = "127.0.0.2";
    public const string Resource = "https://vault.azure.net";

    public static readonly UserAssignedIdentity A = UserAssigned(0);
    public static readonly UserAssignedIdentity B = UserAssigned(1);

    public ImdsEmulatorServer Emulator { get; private set; } = null!;
    public ProxyHost Proxy { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Emulator = await ImdsEmulatorServer.StartAsync(WithUserAssigned(2));
        var settings = Settings(Emulator, ("app", Caller, [$"client_id={A.ClientId}"]));
        settings["MsiProxy:Forwarding:SharedAnswerDuration"] = "00:00:00"; // every accepted request goes upstream, to be seen there
        Proxy = await ProxyHost.StartAsync(settings);
    }

    public async Task DisposeAsync()
    {
        await Proxy.DisposeAsync();
        await Emulator.DisposeAsync();
    }

    /// <summary>Sends <paramref name="target"/> as written and returns the answer with what the emulator received meanwhile.</summary>
    public async Task<(RawHttpResponse Response, IReadOnlyList<RequestRecord> Upstream)> SendAsync(string target, string? host = null,
        string caller = Caller)
    {
        Proxy.Get<TokenCache>().RemoveWhere(_ => true, "test"); // so every token request that is accepted goes upstream
        var before = Emulator.State.Requests.Max(r => (long?)r.Sequence) ?? 0;
        var response = await RawHttp.GetAsync(Proxy.ClientAddress, target, [("Metadata", "true")], from: caller, host: host);
        var upstream = Emulator.State.Requests
            .Where(r => r.Sequence > before && !IsHealthProbe(r))
            .OrderBy(r => r.Sequence).ToList();
        return (response, upstream);
    }

    private static bool IsHealthProbe(RequestRecord request) => request.RawTarget == "/metadata/versions";
}
