using MsiProxy.ImdsEmulator;
using MsiProxy.Testing.Clients;
using MsiProxy.Testing.Proxy;
using MsiProxy.Tests.Requests;

namespace MsiProxy.Tests.Clients;

/// <summary>
/// Real, unmodified SDK clients (child processes connecting from 127.0.0.1) get tokens through the proxy exactly
/// as they would from IMDS — and are refused when their address is not registered.
/// </summary>
[Collection(MsiProxy.Tests.Hosting.Serial.Name)]
public sealed class SdkThroughProxyTests
{
    private const string Resource = "https://management.azure.com/";

    public static TheoryData<SdkKind> Sdks => new() { SdkKind.AzureIdentity, SdkKind.Msal, SdkKind.Js };

    [Theory]
    [MemberData(nameof(Sdks))]
    public async Task A_registered_sdk_client_gets_a_token_through_the_proxy(SdkKind sdk)
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await ProxyHost.StartAsync(CoreSettings.Proxy(emulator.BaseAddress, ("sdk", "127.0.0.1", [])));

        var result = await SdkClientRunner.RunAsync(proxy.ClientAddress, new SdkClientRequest(sdk, Resource) { Timeout = TimeSpan.FromSeconds(20) });

        Assert.True(result.Ok, result.ToString());
        Assert.Contains(result.Token, emulator.State.IssuedTokens);
        Assert.Contains(proxy.Logs.Events, e => e.Category == "MsiProxy.Requests" && e.Value("ClientName") == "sdk" && e.Value("StatusCode") == "200");
    }

    [Theory]
    [MemberData(nameof(Sdks))]
    public async Task An_sdk_client_whose_address_is_not_registered_is_refused_quickly(SdkKind sdk)
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await ProxyHost.StartAsync(CoreSettings.Proxy(emulator.BaseAddress, ("other", "127.0.0.9", [])));

        var result = await SdkClientRunner.RunAsync(proxy.ClientAddress, new SdkClientRequest(sdk, Resource) { Timeout = TimeSpan.FromSeconds(20) });

        Assert.False(result.Ok, result.ToString());
        Assert.False(result.TimedOut, result.ToString());
        Assert.Null(result.Token);
        Assert.Contains(proxy.Logs.Events, e => e.Category == "MsiProxy.Requests" && e.Value("Caller") == "127.0.0.1" && e.Value("StatusCode") == "403");
        CoreAssert.NothingUpstream(emulator);
        Assert.Empty(emulator.State.IssuedTokens);
    }
}
