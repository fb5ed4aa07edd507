namespace MsiProxy.ImdsEmulator.Tokens;

/// <summary>A minted token and the times the 200 body reports for it.</summary>
internal sealed record IssuedToken(
    string AccessToken,
    string ClientId,
    string Resource,
    DateTimeOffset IssuedAt,
    DateTimeOffset NotBefore,
    DateTimeOffset ExpiresOn,
    TimeSpan Lifetime);
