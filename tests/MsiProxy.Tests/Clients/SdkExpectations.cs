using Microsoft.AspNetCore.WebUtilities;
using MsiProxy.ImdsEmulator;
using MsiProxy.Testing.Clients;
using MsiProxy.Testing.Emulator;

namespace MsiProxy.Tests.Clients;

/// <summary>What the real clients do, as observed (docs: ../shared/reference/imds.md §6 and §13), for the SDK tests to assert.</summary>
internal static class SdkExpectations
{
    public static SdkClientRequest Request(SdkKind sdk, string resource) => new(sdk, resource) { Timeout = TimeSpan.FromSeconds(30) };

    /// <summary>A resource of the test's own, so that neither the proxy's cache nor the emulator's log mixes tests.</summary>
    public static string ResourceFor(SdkKind sdk, string scenario) => $"https://{scenario}-{sdk.ToString().ToLowerInvariant()}.msiproxy.test/";

    /// <summary>
    /// Requests one token call makes when it is answered at once: the DefaultAzureCredentials first send a probe
    /// without Metadata — .NET's always, @azure/identity's only when it calls 169.254.169.254 itself (it skips the
    /// probe when AZURE_POD_IDENTITY_AUTHORITY_HOST is set).
    /// </summary>
    public static int RequestsPerCall(SdkKind sdk, bool transparent) => sdk switch
    {
        SdkKind.DefaultAzureCredential => 2,
        SdkKind.JsDefaultAzureCredential when transparent => 2,
        _ => 1,
    };

    /// <summary>
    /// How each client reports a refusal by the proxy (an unregistered caller, a 403): the exception type (msal-node:
    /// name and error code; PowerShell: the cmdlet's exception) and a text the message carries.
    /// </summary>
    public static (string ErrorType, string MessagePart) ForbiddenReport(SdkKind sdk) => sdk switch
    {
        SdkKind.AzureIdentity => ("Azure.Identity.AuthenticationFailedException", "ManagedIdentityCredential authentication failed: [Managed Identity] Error Code: forbidden"),
        // The probe got IMDS's 400, so the credential asked again with Metadata and got the 403: unavailable, and the
        // chain drops the proxy's description (issue 15 notes it), as it would IMDS's.
        SdkKind.DefaultAzureCredential => ("Azure.Identity.CredentialUnavailableException", "ManagedIdentityCredential authentication unavailable"),
        SdkKind.Msal => ("Microsoft.Identity.Client.MsalServiceException", "[Managed Identity] Error Code: forbidden"),
        SdkKind.Js => ("CredentialUnavailableError", "ManagedIdentityCredential: Authentication failed. Message forbidden"),
        SdkKind.JsDefaultAzureCredential => ("AggregateAuthenticationError", "ManagedIdentityCredential: Authentication failed. Message forbidden"),
        SdkKind.MsalNode => ("ServerError:forbidden", "forbidden: Error(s)"),
        SdkKind.PowerShell => ("Microsoft.PowerShell.Commands.HttpResponseException", "\"error\": \"forbidden\""),
        _ => throw new ArgumentOutOfRangeException(nameof(sdk), sdk, null),
    };

    /// <summary>
    /// The exception type each client reports when the identity it asks for is refused — the same for the proxy's 403
    /// today and for IMDS's 400 "Identity not found" (issue 15 item 2), so tests that must pass either way assert it.
    /// </summary>
    public static string UnavailableIdentityErrorType(SdkKind sdk) => sdk switch
    {
        SdkKind.AzureIdentity => "Azure.Identity.AuthenticationFailedException",
        SdkKind.DefaultAzureCredential => "Azure.Identity.CredentialUnavailableException",
        SdkKind.Msal => "Microsoft.Identity.Client.MsalServiceException",
        SdkKind.Js => "CredentialUnavailableError",
        SdkKind.JsDefaultAzureCredential => "AggregateAuthenticationError",
        SdkKind.PowerShell => "Microsoft.PowerShell.Commands.HttpResponseException",
        _ => throw new ArgumentOutOfRangeException(nameof(sdk), sdk, "msal-node names the error code, which differs"),
    };

    /// <summary>The query the emulator received, decoded, in the order sent (names as sent).</summary>
    public static IReadOnlyList<KeyValuePair<string, string>> DecodedQuery(RequestRecord request) =>
        [.. QueryHelpers.ParseQuery(request.Query).Select(p => KeyValuePair.Create(p.Key, p.Value.ToString()))];

    /// <summary>Token requests the emulator received for <paramref name="resource"/> (with or without a trailing slash), oldest first.</summary>
    public static IReadOnlyList<RequestRecord> TokenRequestsFor(EmulatorState state, string resource) =>
        [.. state.Requests.Where(r => r.Path.StartsWith(ImdsRequests.TokenPath, StringComparison.OrdinalIgnoreCase)
            && DecodedQuery(r).Any(p => p.Key == "resource" && p.Value.TrimEnd('/') == resource.TrimEnd('/')))
            .OrderBy(r => r.Sequence)];

    /// <summary>
    /// What the proxy sent upstream: GET on the token path with Metadata: true and no X-Forwarded-For, api-version and
    /// resource first, and the selector (if any) as the client gave it.
    /// </summary>
    public static void AssertForwarded(RequestRecord upstream, (string Name, string Value)? expectedSelector)
    {
        Assert.Equal("GET", upstream.Method);
        Assert.Equal(ImdsRequests.TokenPath, upstream.Path);
        Assert.Equal("true", upstream.Headers["Metadata"]);
        Assert.DoesNotContain(upstream.Headers.Keys, h => h.Equals("X-Forwarded-For", StringComparison.OrdinalIgnoreCase));
        var query = DecodedQuery(upstream);
        Assert.Equal(["api-version", "resource"], query.Take(2).Select(p => p.Key));
        Assert.Equal("2018-02-01", query[0].Value);
        var selectors = query.Where(p => p.Key is "client_id" or "object_id" or "msi_res_id" or "mi_res_id").ToList();
        if (expectedSelector is { } selector)
        {
            var sent = Assert.Single(selectors);
            Assert.Equal(selector.Name, sent.Key);
            Assert.Equal(selector.Value, sent.Value, ignoreCase: true);
        }
        else
        {
            Assert.Empty(selectors);
        }
    }
}
