using System.Text.Json;
using MsiProxy.ImdsEmulator;
using MsiProxy.Testing.Clients;
using MsiProxy.Testing.Net;

namespace MsiProxy.Tests.Clients;

/// <summary>
/// One transparent-interception lab: a <see cref="TransparentNamespace"/> with the emulator on 127.0.0.1 inside it
/// and the real MsiProxy program on 169.254.169.254:80, its upstream set to that emulator. Shared by the tests of a
/// class (starting the proxy costs about a second); each test asks for its own resource, so the proxy's cache and
/// the emulator's log keep one test's requests apart from another's.
/// </summary>
public abstract class TransparentLab : IAsyncLifetime
{
    private TransparentNamespace? _namespace;
    private NamespaceEmulator? _emulator;
    private NamespaceProxy? _proxy;

    public TransparentNamespace Namespace => _namespace ?? throw new InvalidOperationException(Unavailable);

    public NamespaceEmulator Emulator => _emulator ?? throw new InvalidOperationException(Unavailable);

    public NamespaceProxy Proxy => _proxy ?? throw new InvalidOperationException(Unavailable);

    public EmulatorState State => Emulator.State;

    /// <summary>Null when the lab is up; otherwise why it could not be (the tests skip with it).</summary>
    public string? UnavailableReason { get; } = TransparentNamespace.UnavailableReason;

    private string Unavailable => $"The transparent lab is not available: {UnavailableReason}";

    protected abstract EmulatorOptions EmulatorOptions { get; }

    protected abstract IReadOnlyList<(string Name, string Address, string[] Identities)> Clients { get; }

    public async Task InitializeAsync()
    {
        if (UnavailableReason is not null)
        {
            return;
        }

        _namespace = await TransparentNamespace.CreateAsync();
        _emulator = await NamespaceEmulator.StartAsync(_namespace, EmulatorOptions);
        _proxy = await NamespaceProxy.StartAsync(_namespace, _emulator.BaseAddress, Clients);
    }

    public async Task DisposeAsync()
    {
        if (_proxy is not null)
        {
            await _proxy.DisposeAsync();
        }

        if (_emulator is not null)
        {
            await _emulator.DisposeAsync();
        }

        _namespace?.Dispose();
    }

    /// <summary>Runs <paramref name="request"/> in the namespace and returns its result with the proxy lines it caused.</summary>
    public async Task<(SdkClientResult Result, IReadOnlyList<JsonElement> ProxyLines)> RunAsync(SdkClientRequest request, int expectedProxyLines)
    {
        var before = Proxy.RequestLines.Count;
        var result = await SdkClientRunner.RunTransparentAsync(Namespace, request);
        var lines = await Proxy.RequestLinesAsync(before + expectedProxyLines);
        return (result, lines.Skip(before).ToList());
    }
}
