using MsiProxy.ImdsEmulator;
using MsiProxy.Testing.Clients;
using MsiProxy.Testing.Emulator;
using MsiProxy.Testing.Proxy;
using MsiProxy.Tests.Requests;
using MsiProxy.Tests.Tokens;
using static MsiProxy.Tests.Clients.SdkExpectations;

namespace MsiProxy.Tests.Clients;

/// <summary>
/// More real clients (child processes connecting from 127.0.0.1) aimed at the proxy with
/// AZURE_POD_IDENTITY_AUTHORITY_HOST, as SdkThroughProxyTests does for Azure.Identity's and @azure/identity's
/// ManagedIdentityCredential and MSAL.NET: @azure/identity's DefaultAzureCredential (which skips its probe when the
/// variable is set), msal-node used directly, PowerShell's Invoke-RestMethod, and .NET's DefaultAzureCredential,
/// whose header-less probe only IMDS's own address may answer with 400 (see TransparentSdkTests for it succeeding).
/// </summary>
[Collection(MsiProxy.Tests.Hosting.Serial.Name)]
public sealed class PodIdentityHostSdkTests
{
    private static readonly UserAssignedIdentity Bound = ProxyCalls.UserAssigned(0);
    private static readonly UserAssignedIdentity NotBound = ProxyCalls.UserAssigned(1);

    public static TheoryData<SdkKind> Sdks => [SdkKind.JsDefaultAzureCredential, SdkKind.MsalNode, SdkKind.PowerShell];

    [Theory]
    [MemberData(nameof(Sdks))]
    public async Task A_registered_client_gets_a_system_assigned_token_in_one_request(SdkKind sdk)
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync(ProxyCalls.WithUserAssigned(2));
        await using var proxy = await ProxyHost.StartAsync(ProxyCalls.Settings(emulator, ("app", "127.0.0.1", ["system", $"client_id={Bound.ClientId}"])));

        var result = await SdkClientRunner.RunAsync(proxy.ClientAddress, Request(sdk, ProxyCalls.Arm));

        Assert.True(result.Ok, result.ToString());
        Assert.Equal(emulator.State.Options.SystemObjectId, ImdsRequests.DecodeClaims(result.Token!).GetProperty("oid").GetString());
        Assert.Equal([result.Token!], emulator.State.IssuedTokens);
        AssertForwarded(Assert.Single(ProxyCalls.TokenRequests(emulator)), expectedSelector: null);
        var line = Assert.Single(await CoreAssert.RequestLogLinesAsync(proxy, 1));
        Assert.Equal("200", line.Value("StatusCode"));
        Assert.Equal("app", line.Value("ClientName"));
    }

    [Theory]
    [MemberData(nameof(Sdks))]
    public async Task A_registered_client_gets_its_bound_user_assigned_identity_by_client_id(SdkKind sdk)
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync(ProxyCalls.WithUserAssigned(2));
        await using var proxy = await ProxyHost.StartAsync(ProxyCalls.Settings(emulator, ("app", "127.0.0.1", [$"client_id={Bound.ClientId}"])));

        var result = await SdkClientRunner.RunAsync(proxy.ClientAddress, Request(sdk, ProxyCalls.Arm) with { ClientId = Bound.ClientId });

        Assert.True(result.Ok, result.ToString());
        Assert.Equal(Bound.ObjectId, ImdsRequests.DecodeClaims(result.Token!).GetProperty("oid").GetString());
        AssertForwarded(Assert.Single(ProxyCalls.TokenRequests(emulator)), expectedSelector: ("client_id", Bound.ClientId));
        Assert.Single(await CoreAssert.RequestLogLinesAsync(proxy, 1));
    }

    [Theory]
    [MemberData(nameof(Sdks))]
    public async Task A_client_whose_address_is_not_registered_is_refused_with_403_at_once(SdkKind sdk)
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await ProxyHost.StartAsync(ProxyCalls.Settings(emulator, ("other", "127.0.0.9", [])));

        var result = await SdkClientRunner.RunAsync(proxy.ClientAddress, Request(sdk, ProxyCalls.Arm));

        Assert.False(result.Ok, result.ToString());
        Assert.False(result.TimedOut, result.ToString());
        Assert.Equal(1, result.ExitCode);
        var (errorType, messagePart) = ForbiddenReport(sdk);
        Assert.Equal(errorType, result.ErrorType);
        Assert.Contains(messagePart, result.Message, StringComparison.Ordinal);
        Assert.Contains("Caller 127.0.0.1 is not a registered client of this proxy", result.Message, StringComparison.Ordinal);
        if (sdk == SdkKind.PowerShell)
        {
            Assert.Equal(403, result.Status);
        }

        var line = Assert.Single(await CoreAssert.RequestLogLinesAsync(proxy, 1));
        Assert.Equal("403", line.Value("StatusCode"));
        CoreAssert.NothingUpstream(emulator);
    }

    /// <summary>Invariant under issue 15 item 2 (403 today, IMDS's 400 after): one request, refused, nothing upstream.</summary>
    [Theory]
    [InlineData(SdkKind.JsDefaultAzureCredential)]
    [InlineData(SdkKind.PowerShell)]
    [InlineData(SdkKind.MsalNode)]
    public async Task A_client_asking_for_an_identity_it_is_not_bound_to_is_refused_at_once_and_nothing_goes_upstream(SdkKind sdk)
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync(ProxyCalls.WithUserAssigned(2));
        await using var proxy = await ProxyHost.StartAsync(ProxyCalls.Settings(emulator, ("app", "127.0.0.1", [$"client_id={Bound.ClientId}"])));

        var result = await SdkClientRunner.RunAsync(proxy.ClientAddress, Request(sdk, ProxyCalls.Arm) with { ClientId = NotBound.ClientId });

        Assert.False(result.Ok, result.ToString());
        Assert.False(result.TimedOut, result.ToString());
        Assert.Equal(1, result.ExitCode);
        if (sdk != SdkKind.MsalNode)
        {
            Assert.Equal(UnavailableIdentityErrorType(sdk), result.ErrorType);
        }

        var line = Assert.Single(await CoreAssert.RequestLogLinesAsync(proxy, 1));
        Assert.Equal("app", line.Value("ClientName"));
        Assert.Equal("denied", line.Value("Outcome"));
        CoreAssert.NothingUpstream(emulator);
        Assert.Empty(emulator.State.IssuedTokens);
    }

    /// <summary>
    /// .NET's DefaultAzureCredential probes without Metadata first and, unless the host it called is literally
    /// 169.254.169.254, takes IMDS's 400 for "no managed identity here" — as it would against IMDS behind any other
    /// address. One request, answered by the proxy itself; the chain reports the identity as unavailable.
    /// </summary>
    [Fact]
    public async Task Dotnet_default_azure_credential_takes_the_proxys_400_to_its_probe_for_no_identity()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await ProxyHost.StartAsync(ProxyCalls.Settings(emulator, ("app", "127.0.0.1", ["system"])));

        var result = await SdkClientRunner.RunAsync(proxy.ClientAddress, Request(SdkKind.DefaultAzureCredential, ProxyCalls.Arm));

        Assert.False(result.Ok, result.ToString());
        Assert.Equal("Azure.Identity.CredentialUnavailableException", result.ErrorType);
        Assert.Contains("The requested identity has not been assigned to this resource", result.Message, StringComparison.Ordinal);
        Assert.Contains("Required metadata header not specified", result.Message, StringComparison.Ordinal);
        var line = Assert.Single(await CoreAssert.RequestLogLinesAsync(proxy, 1));
        Assert.Equal("400", line.Value("StatusCode"));
        Assert.Equal("invalid", line.Value("Outcome"));
        CoreAssert.NothingUpstream(emulator);
    }

    /// <summary>
    /// The operator's opt-out (MsiProxy:RequireMetadataHeader=false, as aad-pod-identity defaulted to): the probe is
    /// answered with a token, which DefaultAzureCredential uses — one request, sent upstream with Metadata: true.
    /// </summary>
    [Fact]
    public async Task Dotnet_default_azure_credential_uses_the_token_answering_its_probe_when_metadata_is_not_required()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync(ProxyCalls.WithUserAssigned(1));
        var settings = ProxyCalls.Settings(emulator, ("app", "127.0.0.1", [$"client_id={Bound.ClientId}"]));
        settings["MsiProxy:RequireMetadataHeader"] = "false";
        await using var proxy = await ProxyHost.StartAsync(settings);

        var result = await SdkClientRunner.RunAsync(
            proxy.ClientAddress, Request(SdkKind.DefaultAzureCredential, ProxyCalls.Arm) with { ClientId = Bound.ClientId });

        Assert.True(result.Ok, result.ToString());
        Assert.Equal(Bound.ObjectId, ImdsRequests.DecodeClaims(result.Token!).GetProperty("oid").GetString());
        AssertForwarded(Assert.Single(ProxyCalls.TokenRequests(emulator)), expectedSelector: ("client_id", Bound.ClientId));
        Assert.Equal("200", Assert.Single(await CoreAssert.RequestLogLinesAsync(proxy, 1)).Value("StatusCode"));
    }
}
