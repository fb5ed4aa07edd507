using System.Text.Json;
using MsiProxy.ImdsEmulator;
using MsiProxy.Testing.Clients;
using MsiProxy.Testing.Emulator;
using MsiProxy.Testing.Net;
using MsiProxy.Tests.Tokens;
using static MsiProxy.Tests.Clients.SdkExpectations;

namespace MsiProxy.Tests.Clients;

/// <summary>
/// Real clients calling <c>http://169.254.169.254</c> unchanged — no AZURE_POD_IDENTITY_AUTHORITY_HOST — as on an
/// Azure VM whose IMDS traffic is intercepted: inside a test-made network namespace where that address is local, the
/// proxy program listens on it, with the emulator in the same namespace as its upstream. The DefaultAzureCredentials
/// send their header-less probe first here, as they do against IMDS itself, and go on to ask with Metadata on the
/// proxy's 400.
/// </summary>
[Collection(MsiProxy.Tests.Hosting.Serial.Name)]
public sealed class TransparentSdkTests(TransparentSdkTests.Lab lab) : IClassFixture<TransparentSdkTests.Lab>
{
    private static readonly UserAssignedIdentity Bound = ProxyCalls.UserAssigned(0);
    private static readonly UserAssignedIdentity NotBound = ProxyCalls.UserAssigned(1);

    public static TheoryData<SdkKind> Sdks =>
    [
        SdkKind.AzureIdentity, SdkKind.DefaultAzureCredential, SdkKind.Msal,
        SdkKind.Js, SdkKind.JsDefaultAzureCredential, SdkKind.MsalNode, SdkKind.PowerShell,
    ];

    public static TheoryData<SdkKind> RefusalSdks =>
        [SdkKind.AzureIdentity, SdkKind.DefaultAzureCredential, SdkKind.Js, SdkKind.JsDefaultAzureCredential];

    [SkippableTheory]
    [MemberData(nameof(Sdks))]
    public async Task A_client_calling_imds_unchanged_gets_a_system_assigned_token_through_the_proxy(SdkKind sdk)
    {
        Skip.If(lab.UnavailableReason is not null, lab.UnavailableReason);
        var resource = ResourceFor(sdk, "system");

        var (result, lines) = await lab.RunAsync(Request(sdk, resource), RequestsPerCall(sdk, transparent: true));

        Assert.True(result.Ok, result + "\nproxy:\n" + lab.Proxy.Output);
        Assert.Equal(lab.State.Options.SystemObjectId, ImdsRequests.DecodeClaims(result.Token!).GetProperty("oid").GetString());
        Assert.Contains(result.Token, lab.State.IssuedTokens);
        AssertForwarded(Assert.Single(TokenRequestsFor(lab.State, resource)), expectedSelector: null);
        AssertAnswered(sdk, lines, finalStatus: 200);
    }

    [SkippableTheory]
    [MemberData(nameof(Sdks))]
    public async Task A_client_calling_imds_unchanged_gets_its_bound_user_assigned_identity_by_client_id(SdkKind sdk)
    {
        Skip.If(lab.UnavailableReason is not null, lab.UnavailableReason);
        var resource = ResourceFor(sdk, "user");

        var (result, lines) = await lab.RunAsync(Request(sdk, resource) with { ClientId = Bound.ClientId }, RequestsPerCall(sdk, transparent: true));

        Assert.True(result.Ok, result + "\nproxy:\n" + lab.Proxy.Output);
        Assert.Equal(Bound.ObjectId, ImdsRequests.DecodeClaims(result.Token!).GetProperty("oid").GetString());
        AssertForwarded(Assert.Single(TokenRequestsFor(lab.State, resource)), expectedSelector: ("client_id", Bound.ClientId));
        AssertAnswered(sdk, lines, finalStatus: 200);
    }

    /// <summary>
    /// What stays true however the proxy words this refusal (issue 15 item 2 changes the answer; SdkDialectTests pins
    /// it): the client fails at once with the same kind of error, nothing goes upstream, no token is issued.
    /// </summary>
    [SkippableTheory]
    [MemberData(nameof(RefusalSdks))]
    public async Task A_client_calling_imds_unchanged_for_an_identity_it_is_not_bound_to_is_refused_and_nothing_goes_upstream(SdkKind sdk)
    {
        Skip.If(lab.UnavailableReason is not null, lab.UnavailableReason);
        var resource = ResourceFor(sdk, "unbound");
        var issuedBefore = lab.State.IssuedTokens.Count;

        var (result, lines) = await lab.RunAsync(Request(sdk, resource) with { ClientId = NotBound.ClientId }, RequestsPerCall(sdk, transparent: true));

        Assert.False(result.Ok, result.ToString());
        Assert.False(result.TimedOut, result.ToString());
        Assert.Equal(1, result.ExitCode);
        Assert.Equal(UnavailableIdentityErrorType(sdk), result.ErrorType);
        Assert.Empty(TokenRequestsFor(lab.State, resource));
        Assert.Equal(issuedBefore, lab.State.IssuedTokens.Count);
        Assert.True(lines.Count == RequestsPerCall(sdk, transparent: true), $"proxy lines: {string.Join("\n", lines)}");
        // A DefaultAzureCredential's probe gets IMDS's 400 before the caller is looked up; the real request is the refusal.
        Assert.All(lines.SkipLast(1), l => Assert.Equal("invalid", l.GetProperty("Outcome").GetString()));
        Assert.Equal("denied", lines[^1].GetProperty("Outcome").GetString());
        Assert.Equal("app", lines[^1].GetProperty("ClientName").GetString());
    }

    /// <summary>The proxy answered every request of the call from the client's own address on lo; a probe got IMDS's 400.</summary>
    internal static void AssertAnswered(SdkKind sdk, IReadOnlyList<JsonElement> lines, int finalStatus)
    {
        Assert.True(lines.Count == RequestsPerCall(sdk, transparent: true), $"proxy lines: {string.Join("\n", lines)}");
        Assert.All(lines, l => Assert.Equal(TransparentNamespace.ImdsAddress, l.GetProperty("Caller").GetString()));
        if (lines.Count == 2)
        {
            Assert.Equal(400, lines[0].GetProperty("StatusCode").GetInt32());
            Assert.Equal("invalid", lines[0].GetProperty("Outcome").GetString()); // no Metadata header
        }

        Assert.Equal(finalStatus, lines[^1].GetProperty("StatusCode").GetInt32());
    }

    /// <summary>The VM has two user-assigned identities; the caller (169.254.169.254 on lo) is bound to system and one of them.</summary>
    public sealed class Lab : TransparentLab
    {
        protected override EmulatorOptions EmulatorOptions => new() { UserAssigned = [Bound, NotBound] };

        protected override IReadOnlyList<(string Name, string Address, string[] Identities)> Clients =>
            [("app", TransparentNamespace.ImdsAddress, ["system", $"client_id={Bound.ClientId}"])];
    }
}
