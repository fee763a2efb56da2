// StartTLS is the JDK's LDAP client (JNDI) used the way applications use it
// with StartTLS, for directory tests: the context connects (and binds
// anonymously, as JNDI does by default), upgrades with StartTLS, binds as a
// service account and searches. It prints the DN of every entry found.
//
// java StartTLS.java HOST:PORT CA.pem BIND_DN PASSWORD BASE FILTER
import java.io.FileInputStream;
import java.security.KeyStore;
import java.security.cert.CertificateFactory;
import java.util.Hashtable;
import javax.naming.Context;
import javax.naming.NamingEnumeration;
import javax.naming.directory.SearchControls;
import javax.naming.directory.SearchResult;
import javax.naming.ldap.InitialLdapContext;
import javax.naming.ldap.LdapContext;
import javax.naming.ldap.StartTlsRequest;
import javax.naming.ldap.StartTlsResponse;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;

public class StartTLS {
    public static void main(String[] args) throws Exception {
        KeyStore ks = KeyStore.getInstance(KeyStore.getDefaultType());
        ks.load(null, null);
        try (FileInputStream in = new FileInputStream(args[1])) {
            ks.setCertificateEntry("ca", CertificateFactory.getInstance("X.509").generateCertificate(in));
        }
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(ks);
        SSLContext ssl = SSLContext.getInstance("TLS");
        ssl.init(null, tmf.getTrustManagers(), null);

        Hashtable<String, Object> env = new Hashtable<>();
        env.put(Context.INITIAL_CONTEXT_FACTORY, "com.sun.jndi.ldap.LdapCtxFactory");
        env.put(Context.PROVIDER_URL, "ldap://" + args[0]);
        // a server that never answers fails the client instead of hanging it
        env.put("com.sun.jndi.ldap.connect.timeout", "10000");
        env.put("com.sun.jndi.ldap.read.timeout", "20000");
        LdapContext ctx = new InitialLdapContext(env, null);
        StartTlsResponse tls = (StartTlsResponse) ctx.extendedOperation(new StartTlsRequest());
        tls.negotiate(ssl.getSocketFactory());
        ctx.addToEnvironment(Context.SECURITY_AUTHENTICATION, "simple");
        ctx.addToEnvironment(Context.SECURITY_PRINCIPAL, args[2]);
        ctx.addToEnvironment(Context.SECURITY_CREDENTIALS, args[3]);
        SearchControls sc = new SearchControls();
        sc.setSearchScope(SearchControls.SUBTREE_SCOPE);
        sc.setReturningAttributes(new String[] {"1.1"});
        NamingEnumeration<SearchResult> res = ctx.search(args[4], args[5], sc);
        while (res.hasMore()) {
            System.out.println(res.next().getNameInNamespace());
        }
        tls.close();
        ctx.close();
    }
}
