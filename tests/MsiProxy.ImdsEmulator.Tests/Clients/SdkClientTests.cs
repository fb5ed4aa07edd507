using MsiProxy.Testing.Clients;
using MsiProxy.Testing.Emulator;

namespace MsiProxy.ImdsEmulator.Tests.Clients;

/// <summary>
/// Faithfulness: real, unmodified Azure.Identity, MSAL.NET and @azure/identity clients, each in its own process
/// (the SDKs fix the endpoint and cache tokens per process), against the emulator on loopback.
/// </summary>
[Collection(SdkClientProcesses.Name)]
public sealed class SdkClientTests : EmulatorTestBase
{
    private const string Arm = "https://management.azure.com/";

    private static readonly UserAssignedIdentity User = new(
        "5a5a5a5a-1111-4222-8333-944444444444", "6b6b6b6b-1111-4222-8333-944444444444",
        "/subscriptions/8d10da13-8125-4ba9-a717-bf7490507b3d/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/app");

    protected override EmulatorOptions Options => new() { UserAssigned = [User] };

    public static TheoryData<SdkKind> Sdks => [SdkKind.AzureIdentity, SdkKind.Msal, SdkKind.Js];

    [Theory]
    [MemberData(nameof(Sdks))]
    public async Task Each_sdk_gets_a_system_assigned_token(SdkKind sdk)
    {
        var result = await SdkClientRunner.RunAsync(Server.BaseAddress, new SdkClientRequest(sdk, Arm) { Timeout = TimeSpan.FromSeconds(20) });

        Assert.True(result.Ok, result.ToString());
        Assert.Contains(result.Token, State.IssuedTokens);
        var claims = ImdsRequests.DecodeClaims(result.Token!);
        Assert.Equal(State.Options.SystemObjectId, claims.GetProperty("oid").GetString());
        Assert.InRange(result.ExpiresOn!.Value, DateTimeOffset.UtcNow.AddHours(23), DateTimeOffset.UtcNow.AddHours(25));
        var request = Assert.Single(State.Requests);
        Assert.Equal("true", request.Headers["Metadata"]);
    }

    [Theory]
    [MemberData(nameof(Sdks))]
    public async Task Each_sdk_gets_a_user_assigned_token_by_client_id(SdkKind sdk)
    {
        var result = await SdkClientRunner.RunAsync(
            Server.BaseAddress, new SdkClientRequest(sdk, Arm) { ClientId = User.ClientId, Timeout = TimeSpan.FromSeconds(20) });

        Assert.True(result.Ok, result.ToString());
        Assert.Equal(User.ObjectId, ImdsRequests.DecodeClaims(result.Token!).GetProperty("oid").GetString());
        Assert.Contains($"client_id={User.ClientId}", Assert.Single(State.Requests).Query);
    }

    [Theory]
    [MemberData(nameof(Sdks))]
    public async Task Each_sdk_reports_an_unassigned_identity_as_not_available(SdkKind sdk)
    {
        var result = await SdkClientRunner.RunAsync(
            Server.BaseAddress,
            new SdkClientRequest(sdk, Arm) { ClientId = "00000000-dead-beef-0000-000000000000", Timeout = TimeSpan.FromSeconds(20) });

        Assert.False(result.Ok, result.ToString());
        Assert.Equal(1, result.ExitCode);
        Assert.Matches("(?i)identity not found|authentication unavailable|has not been assigned", result.Message);
        Assert.Empty(State.IssuedTokens);
    }

    [Theory]
    [InlineData(SdkKind.AzureIdentity)]
    [InlineData(SdkKind.Js)]
    public async Task Azure_identity_sdks_honour_retry_after_on_429_then_succeed(SdkKind sdk)
    {
        State.Faults.Enqueue(new FaultRule { PathPrefix = "/metadata/identity", Status = 429, RetryAfter = TimeSpan.FromSeconds(1) });

        var result = await SdkClientRunner.RunAsync(Server.BaseAddress, new SdkClientRequest(sdk, Arm) { Timeout = TimeSpan.FromSeconds(20) });

        Assert.True(result.Ok, result.ToString());
        var requests = State.Requests;
        Assert.Equal([429, 200], requests.Select(r => r.Status ?? 0));
        Assert.True(requests[1].ArrivedAt - requests[0].ArrivedAt >= TimeSpan.FromSeconds(0.9), $"retried after {requests[1].ArrivedAt - requests[0].ArrivedAt}");
    }

    [Fact]
    public async Task Msal_retries_a_500_then_succeeds()
    {
        State.Faults.Enqueue(new FaultRule { PathPrefix = "/metadata/identity", Status = 500 });

        var result = await SdkClientRunner.RunAsync(Server.BaseAddress, new SdkClientRequest(SdkKind.Msal, Arm) { Timeout = TimeSpan.FromSeconds(20) });

        Assert.True(result.Ok, result.ToString());
        Assert.Equal([500, 200], State.Requests.Select(r => r.Status ?? 0));
    }
}

/// <summary>Client processes are heavy on a two-core machine: run these one at a time.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SdkClientProcesses
{
    public const string Name = "SDK client processes";
}
