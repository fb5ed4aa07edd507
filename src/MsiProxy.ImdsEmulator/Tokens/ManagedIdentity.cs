namespace MsiProxy.ImdsEmulator.Tokens;

/// <summary>The identity a token request resolved to.</summary>
internal sealed record ManagedIdentity(string ClientId, string ObjectId, string ResourceId, bool IsSystemAssigned)
{
    /// <summary>Cache key part: the object id is unique per identity.</summary>
    public string Key => ObjectId;
}

/// <summary>Maps the request's selector (client_id, object_id, msi_res_id / mi_res_id) to an assigned identity.</summary>
internal sealed class IdentityResolver(EmulatorOptions options)
{
    public ManagedIdentity? Resolve(IdentitySelector selector)
    {
        return selector.Kind switch
        {
            SelectorKind.None => Default(),
            SelectorKind.ClientId => Find(u => Same(u.ClientId, selector.Value), system => Same(options.SystemClientId, selector.Value)),
            SelectorKind.ObjectId => Find(u => Same(u.ObjectId, selector.Value), system => Same(options.SystemObjectId, selector.Value)),
            SelectorKind.ResourceId => Find(u => Same(u.ResourceId, selector.Value), system => false),
            _ => null,
        };
    }

    private ManagedIdentity? Default()
    {
        if (options.SystemAssigned)
        {
            return System();
        }

        // Microsoft documents the selector as required only when the VM has several user-assigned identities.
        return options.UserAssigned.Count == 1 ? User(options.UserAssigned[0]) : null;
    }

    private ManagedIdentity? Find(Func<UserAssignedIdentity, bool> user, Func<bool, bool> system)
    {
        var match = options.UserAssigned.FirstOrDefault(user);
        if (match is not null)
        {
            return User(match);
        }

        return options.SystemAssigned && system(true) ? System() : null;
    }

    private ManagedIdentity System() => new(options.SystemClientId, options.SystemObjectId, options.VmResourceId, IsSystemAssigned: true);

    private static ManagedIdentity User(UserAssignedIdentity u) => new(u.ClientId, u.ObjectId, u.ResourceId, IsSystemAssigned: false);

    private static bool Same(string a, string? b) => string.Equals(a, b, StringComparison.OrdinalIgnoreCase);
}

internal enum SelectorKind
{
    None,
    ClientId,
    ObjectId,
    ResourceId,
}

internal readonly record struct IdentitySelector(SelectorKind Kind, string? Value);
