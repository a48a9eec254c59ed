/*
 * JdbcProbe: what pgjdbc and HikariCP do against conngov (test/clients).
 *
 *   java JdbcProbe pool URL USER SIZE   a fixed HikariCP pool of SIZE; prints
 *                                       "filled N" once N connections are open,
 *                                       then holds the pool until stdin closes
 *                                       and prints "done"
 *   java JdbcProbe connect URL USER     one DriverManager connection; prints
 *                                       "ok" or "sqlstate=... message=..."
 *   java JdbcProbe ending URL USER      one DriverManager connection, idle:
 *                                       prints "pid N", then, after a line on
 *                                       stdin (conngov has ended it), runs a
 *                                       query and prints "ok" or
 *                                       "sqlstate=... message=..."
 *
 * The URL carries ApplicationName: pgjdbc sends it with a SET after login
 * (no assumeMinServerVersion), which conngov charges by late naming.
 *
 * Copyright (c) 2026, conngov developers
 */
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.util.Properties;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;

public class JdbcProbe
{
	public static void main(String[] args) throws Exception
	{
		String mode = args[0];
		String url = args[1];
		String user = args[2];

		if (mode.equals("connect"))
		{
			Properties p = new Properties();
			p.setProperty("user", user);
			try (Connection c = DriverManager.getConnection(url, p))
			{
				c.createStatement().execute("SELECT 1");
				System.out.println("ok");
			}
			catch (SQLException e)
			{
				System.out.println("sqlstate=" + e.getSQLState() + " message="
								   + e.getMessage().replace('\n', ' '));
			}
			return;
		}

		if (mode.equals("ending"))
		{
			Properties p = new Properties();
			p.setProperty("user", user);
			try (Connection c = DriverManager.getConnection(url, p))
			{
				ResultSet rs = c.createStatement().executeQuery("SELECT pg_backend_pid()");
				rs.next();
				System.out.println("pid " + rs.getInt(1));
				System.out.flush();
				new BufferedReader(new InputStreamReader(System.in)).readLine();
				try
				{
					c.createStatement().execute("SELECT 1");
					System.out.println("ok");
				}
				catch (SQLException e)
				{
					System.out.println("sqlstate=" + e.getSQLState() + " message="
									   + e.getMessage().replace('\n', ' '));
				}
			}
			catch (SQLException e)
			{
				/* closing the broken connection may fail too */
			}
			return;
		}

		/* Hikari's defaults, as an application would use them: a fixed pool */
		HikariConfig cfg = new HikariConfig();
		cfg.setJdbcUrl(url);
		cfg.setUsername(user);
		cfg.setMaximumPoolSize(Integer.parseInt(args[3]));
		cfg.setPoolName("conngov-probe");
		cfg.setRegisterMbeans(false);
		try (HikariDataSource ds = new HikariDataSource(cfg))
		{
			int size = Integer.parseInt(args[3]);
			long end = System.currentTimeMillis() + 60000;

			while (ds.getHikariPoolMXBean().getTotalConnections() < size &&
				   System.currentTimeMillis() < end)
				Thread.sleep(20);
			System.out.println("filled " + ds.getHikariPoolMXBean().getTotalConnections());
			System.out.flush();

			/* hold the pool until the test closes stdin */
			BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
			while (in.readLine() != null)
				;
			System.out.println("done " + ds.getHikariPoolMXBean().getTotalConnections());
		}
	}
}
