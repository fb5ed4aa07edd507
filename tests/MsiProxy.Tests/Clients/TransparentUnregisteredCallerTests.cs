using MsiProxy.ImdsEmulator;
using MsiProxy.Testing.Clients;
using MsiProxy.Testing.Emulator;
using MsiProxy.Testing.Net;
using static MsiProxy.Tests.Clients.SdkExpectations;

namespace MsiProxy.Tests.Clients;

/// <summary>A client calling 169.254.169.254 unchanged from an address the proxy does not know is refused, quickly.</summary>
[Collection(MsiProxy.Tests.Hosting.Serial.Name)]
public sealed class TransparentUnregisteredCallerTests(TransparentUnregisteredCallerTests.Lab lab) : IClassFixture<TransparentUnregisteredCallerTests.Lab>
{
    public static TheoryData<SdkKind> Sdks =>
        [SdkKind.AzureIdentity, SdkKind.DefaultAzureCredential, SdkKind.Js, SdkKind.JsDefaultAzureCredential, SdkKind.MsalNode];

    [SkippableTheory]
    [MemberData(nameof(Sdks))]
    public async Task A_client_calling_imds_unchanged_from_an_unregistered_address_is_refused_with_403_and_nothing_goes_upstream(SdkKind sdk)
    {
        Skip.If(lab.UnavailableReason is not null, lab.UnavailableReason);
        var resource = ResourceFor(sdk, "unregistered");
        // The DefaultAzureCredentials' probes get IMDS's 400 (no Metadata) at once, as from IMDS; the real request gets the 403.
        var requests = RequestsPerCall(sdk, transparent: true);

        var (result, lines) = await lab.RunAsync(Request(sdk, resource), requests);

        Assert.False(result.Ok, result.ToString());
        Assert.False(result.TimedOut, result.ToString());
        Assert.Equal(1, result.ExitCode);
        var (errorType, messagePart) = ForbiddenReport(sdk);
        Assert.Equal(errorType, result.ErrorType);
        Assert.Contains(messagePart, result.Message, StringComparison.Ordinal);
        if (sdk != SdkKind.DefaultAzureCredential)
        {
            Assert.Contains($"Caller {TransparentNamespace.ImdsAddress} is not a registered client of this proxy", result.Message, StringComparison.Ordinal);
        }
        Assert.True(lines.Count == requests, $"proxy lines: {string.Join("\n", lines)}");
        Assert.All(lines.SkipLast(1), l => Assert.Equal(400, l.GetProperty("StatusCode").GetInt32()));
        Assert.Equal(403, lines[^1].GetProperty("StatusCode").GetInt32());
        Assert.All(lines, l => Assert.Equal(TransparentNamespace.ImdsAddress, l.GetProperty("Caller").GetString()));
        Assert.DoesNotContain(lab.State.Requests, r => r.Path.StartsWith(ImdsRequests.TokenPath, StringComparison.OrdinalIgnoreCase));
        Assert.Empty(lab.State.IssuedTokens);
    }

    /// <summary>Only 127.0.0.9 is registered; the clients arrive as 169.254.169.254.</summary>
    public sealed class Lab : TransparentLab
    {
        protected override EmulatorOptions EmulatorOptions => new();

        protected override IReadOnlyList<(string Name, string Address, string[] Identities)> Clients => [("other", "127.0.0.9", ["system"])];
    }
}
