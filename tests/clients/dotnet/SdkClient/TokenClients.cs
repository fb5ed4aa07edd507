using Azure.Core;
using Azure.Identity;
using Microsoft.Identity.Client;
using AzureIdentityId = Azure.Identity.ManagedIdentityId;
using MsalIdentityId = Microsoft.Identity.Client.AppConfig.ManagedIdentityId;

namespace MsiProxy.Tests.SdkClient;

/// <summary>The two .NET clients, used the way applications use them.</summary>
internal static class TokenClients
{
    public static async Task<(string Token, DateTimeOffset ExpiresOn)> AzureIdentityAsync(ClientArguments a)
    {
        var id = a.ClientId is not null ? AzureIdentityId.FromUserAssignedClientId(a.ClientId)
            : a.ObjectId is not null ? AzureIdentityId.FromUserAssignedObjectId(a.ObjectId)
            : a.ResourceId is not null ? AzureIdentityId.FromUserAssignedResourceId(new ResourceIdentifier(a.ResourceId))
            : AzureIdentityId.SystemAssigned;
        var credential = new ManagedIdentityCredential(id);
        var scope = a.Resource.EndsWith("/.default", StringComparison.Ordinal) ? a.Resource : a.Resource.TrimEnd('/') + "/.default";
        var token = await credential.GetTokenAsync(new TokenRequestContext([scope]));
        return (token.Token, token.ExpiresOn);
    }

    public static async Task<(string Token, DateTimeOffset ExpiresOn)> MsalAsync(ClientArguments a)
    {
        var id = a.ClientId is not null ? MsalIdentityId.WithUserAssignedClientId(a.ClientId)
            : a.ObjectId is not null ? MsalIdentityId.WithUserAssignedObjectId(a.ObjectId)
            : a.ResourceId is not null ? MsalIdentityId.WithUserAssignedResourceId(a.ResourceId)
            : MsalIdentityId.SystemAssigned;
        var app = ManagedIdentityApplicationBuilder.Create(id).Build();
        var result = await app.AcquireTokenForManagedIdentity(a.Resource).ExecuteAsync();
        return (result.AccessToken, result.ExpiresOn);
    }
}
