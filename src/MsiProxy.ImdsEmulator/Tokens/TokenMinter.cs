using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using MsiProxy.ImdsEmulator.Protocol;

namespace MsiProxy.ImdsEmulator.Tokens;

/// <summary>Mints JWT-shaped tokens whose claims reflect the request, so tests can tell tokens apart.</summary>
internal interface ITokenMinter
{
    IssuedToken Mint(ManagedIdentity identity, string resource);
}

/// <summary>
/// HS256-signed with a key private to this emulator instance: structurally a JWT, useless against any real service.
/// </summary>
internal sealed class TokenMinter(EmulatorOptions options, TimeProvider time) : ITokenMinter
{
    // Real IMDS tokens carry nbf five minutes before issue (allowance for clock skew).
    private static readonly TimeSpan NotBeforeSkew = TimeSpan.FromMinutes(5);

    private readonly byte[] _key = RandomNumberGenerator.GetBytes(32);

    public IssuedToken Mint(ManagedIdentity identity, string resource)
    {
        var now = time.GetUtcNow();
        var issuedAt = DateTimeOffset.FromUnixTimeSeconds(now.ToUnixTimeSeconds());
        var lifetime = TimeSpan.FromSeconds(Math.Max(1, (long)options.TokenLifetime.TotalSeconds));
        var notBefore = issuedAt - NotBeforeSkew;
        var expiresOn = issuedAt + lifetime;

        var header = Base64Url("{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"msiproxy-imds-emulator\"}"u8.ToArray());
        var payload = Base64Url(Encoding.UTF8.GetBytes(ImdsResponses.Json(w =>
        {
            w.WriteString("aud", resource);
            w.WriteString("iss", $"https://sts.windows.net/{options.TenantId}/");
            w.WriteNumber("iat", issuedAt.ToUnixTimeSeconds());
            w.WriteNumber("nbf", notBefore.ToUnixTimeSeconds());
            w.WriteNumber("exp", expiresOn.ToUnixTimeSeconds());
            w.WriteString("appid", identity.ClientId);
            w.WriteString("appidacr", "2");
            w.WriteString("idp", $"https://sts.windows.net/{options.TenantId}/");
            w.WriteString("idtyp", "app");
            w.WriteString("oid", identity.ObjectId);
            w.WriteString("sub", identity.ObjectId);
            w.WriteString("tid", options.TenantId);
            w.WriteString("uti", Base64Url(RandomNumberGenerator.GetBytes(16)));
            w.WriteString("ver", "1.0");
            w.WriteString("xms_mirid", identity.ResourceId);
            w.WriteString("xms_emulator", "MsiProxy.ImdsEmulator");
        })));
        var signature = Base64Url(HMACSHA256.HashData(_key, Encoding.ASCII.GetBytes($"{header}.{payload}")));

        return new IssuedToken($"{header}.{payload}.{signature}", identity.ClientId, resource, issuedAt, notBefore, expiresOn, lifetime);
    }

    private static string Base64Url(byte[] bytes) =>
        Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
